"""NodeRegistry as the node commands read it: a node's on-chain record, and the check that the
caller is its operator before a transaction is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from nodus_cli.support.chain import Chain, rpc
from nodus_cli.support.output import CliError, hex0x

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

STATUSES: Final = ("none", "active", "exiting", "withdrawn")
ZERO_ADDRESS: Final = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class ChainNode:
    node_id: bytes
    operator: ChecksumAddress
    agent: ChecksumAddress
    stake: int
    status: str  # none | active | exiting | withdrawn
    unbonding_end: int
    metadata_uri: str
    active: bool  # isActive: Active and staked at least minStake

    @property
    def shown_id(self) -> str:
        return hex0x(self.node_id)


async def read_node(chain: Chain, node_id: bytes) -> ChainNode:
    from eth_utils.address import to_checksum_address

    registry = chain.contract("NodeRegistry")
    operator, agent, stake, status, unbonding_end, metadata_uri = await rpc(
        chain, registry.functions.getNode(node_id).call()
    )
    active = bool(await rpc(chain, registry.functions.isActive(node_id).call()))
    return ChainNode(
        node_id=node_id,
        operator=to_checksum_address(operator),
        agent=to_checksum_address(agent),
        stake=int(stake),
        status=STATUSES[int(status)],
        unbonding_end=int(unbonding_end),
        metadata_uri=str(metadata_uri),
        active=active,
    )


async def operated_node(chain: Chain, node_id: bytes, caller: ChecksumAddress) -> ChainNode:
    """The node, if `caller` operates it; else a CliError saying whose it is (exit code 2:
    nothing was sent)."""
    node = await read_node(chain, node_id)
    if node.status == "none":
        raise CliError(
            f"node {hex0x(node_id)} is not registered in NodeRegistry on chain {chain.chain_id}",
            exit_code=2,
        )
    if node.operator != caller:
        raise CliError(
            f"node {hex0x(node_id)} is operated by {node.operator}, not by your key "
            f"({caller}): use the operator's key",
            exit_code=2,
        )
    return node
