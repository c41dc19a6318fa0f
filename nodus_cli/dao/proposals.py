"""Proposals as the chain records them: their states, their actions read back from the
Governor's `ProposalCreated` event (checked against the id, so there is no local state to lose),
each action described in words the DAO member can check, and who holds the oracle role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from eth_typing import HexStr

from nodus_cli.support.chain import Chain, get_logs, rpc
from nodus_cli.support.output import (
    CliError,
    bytes32_to_text,
    duration,
    format_nds,
    hex0x,
    short_hex,
)

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress
    from web3.types import EventData

PENDING, ACTIVE, CANCELED, DEFEATED, SUCCEEDED, QUEUED, EXPIRED, EXECUTED = range(8)
# keccak256("ORACLE_ROLE"), written out so that eth_utils loads only when a command runs.
ORACLE_ROLE: Final = bytes.fromhex(
    "68e79a7bf1e0bc45d0a330c573bc367f9cf464fd326078812f301165fbda4ef1"
)


class Support(StrEnum):
    """How a vote counts (GovernorCountingSimple: 0 against, 1 for, 2 abstain)."""

    AGAINST = "against"
    FOR = "for"
    ABSTAIN = "abstain"

    @property
    def code(self) -> int:
        return {"against": 0, "for": 1, "abstain": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Action:
    """One call the timelock makes when the proposal executes."""

    target: ChecksumAddress
    value: int
    calldata: bytes


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposal as its ProposalCreated event recorded it."""

    proposal_id: int
    proposer: ChecksumAddress
    actions: list[Action]
    description: str
    block_number: int

    @property
    def description_hash(self) -> bytes:
        from eth_utils.crypto import keccak

        return keccak(text=self.description)

    def operation(self) -> tuple[list[ChecksumAddress], list[int], list[bytes], bytes]:
        """(targets, values, calldatas, descriptionHash): what queue and execute take."""
        return (
            [a.target for a in self.actions],
            [a.value for a in self.actions],
            [a.calldata for a in self.actions],
            self.description_hash,
        )


# --- reading proposals --------------------------------------------------------------------


def parse_proposal_id(text: str) -> int:
    value = text.strip()
    try:
        number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a proposal id (a decimal number)") from None
    if not 0 < number < 2**256:
        raise typer.BadParameter(f"{text!r} is not a proposal id (a uint256 above 0)")
    return number


ProposalIdArgument = Annotated[
    int, typer.Argument(parser=parse_proposal_id, metavar="PROPOSAL_ID", show_default=False)
]


async def proposal_state(chain: Chain, proposal_id: int) -> int:
    governor = chain.contract("NodusGovernor")
    if await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()) == 0:
        raise CliError(f"there is no proposal {proposal_id} on chain {chain.chain_id}")
    return int(await rpc(chain, governor.functions.state(proposal_id).call()))


async def _last_block_at_or_before(chain: Chain, timestamp: int, low: int, high: int) -> int:
    """The last block in [low, high] whose timestamp is <= `timestamp` (or `low`)."""

    async def time_of(number: int) -> int:
        return int((await rpc(chain, chain.w3.eth.get_block(number)))["timestamp"])

    if await time_of(high) <= timestamp:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if await time_of(middle) <= timestamp:
            low = middle
        else:
            high = middle - 1
    return low


async def find_proposal(chain: Chain, proposal_id: int) -> Proposal:
    """Reads the proposal's actions and description back from its ProposalCreated event.

    The event does not index the id, so logs are scanned newest first, starting at the last
    block before the proposal's snapshot (it was created at or before that time)."""
    from eth_utils.address import to_checksum_address

    governor = chain.contract("NodusGovernor")
    snapshot = int(await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()))
    if snapshot == 0:
        raise CliError(f"there is no proposal {proposal_id} on chain {chain.chain_id}")
    start = chain.deployment.start_block
    latest = int(await rpc(chain, chain.w3.eth.block_number))
    upper = await _last_block_at_or_before(chain, snapshot, start, latest)
    found: list[EventData] = []

    def hit(batch: list[EventData]) -> bool:
        found.extend(e for e in batch if int(e["args"]["proposalId"]) == proposal_id)
        return bool(found)

    await get_logs(
        chain,
        governor.events.ProposalCreated(),
        from_block=start,
        to_block=upper,
        newest_first=True,
        stop=hit,
    )
    if not found:
        raise CliError(
            f"proposal {proposal_id} exists but its ProposalCreated event is not in blocks "
            f"{start}..{upper}; does the RPC node prune old logs?"
        )
    args = found[0]["args"]
    proposal = Proposal(
        proposal_id=proposal_id,
        proposer=to_checksum_address(args["proposer"]),
        actions=[
            Action(to_checksum_address(t), int(v), bytes(c))
            for t, v, c in zip(args["targets"], args["values"], args["calldatas"], strict=True)
        ],
        description=str(args["description"]),
        block_number=int(found[0]["blockNumber"]),
    )
    recomputed = await rpc(chain, governor.functions.hashProposal(*proposal.operation()).call())
    if int(recomputed) != proposal_id:
        raise CliError(f"the ProposalCreated event found does not hash to {proposal_id}")
    return proposal


def describe_action(chain: Chain, action: Action) -> str:
    """A call in words the DAO member can check: `SubscriptionManager.setPrice(12 NDS)`."""
    names = {address: name for name, address in chain.deployment.addresses.items()}
    value = f" with {action.value} wei" if action.value else ""
    name = names.get(action.target)
    generic = f"call {action.target} with data {short_hex(action.calldata, 8)}{value}"
    if name is None:
        return generic
    try:
        function, decoded = chain.contract(name).decode_function_input(
            HexStr(hex0x(action.calldata))
        )
    except ValueError:
        return generic
    fn_name = str(function.fn_name)
    args = list(decoded.values())
    shown = _READABLE.get((name, fn_name), _generic_args)(args)
    return f"{name}.{fn_name}({shown}){value}"


def _generic_args(args: list[Any]) -> str:
    return ", ".join(hex0x(a) if isinstance(a, bytes) else str(a) for a in args)


def _seconds(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds} s = {duration(seconds)}"


def _role(role: bytes) -> str:
    return "ORACLE_ROLE" if role == ORACLE_ROLE else hex0x(role)


_READABLE: Final[dict[tuple[str, str], Callable[[list[Any]], str]]] = {
    ("SubscriptionManager", "setPrice"): lambda a: f"{format_nds(a[0])} per 30 days",
    ("SubscriptionManager", "setRevenueSplit"): (
        lambda a: f"{a[0]} bps = {a[0] / 100:g}% of revenue to the reward pool"
    ),
    ("NodeRegistry", "setMinStake"): lambda a: format_nds(a[0]),
    ("NodeRegistry", "setUnbondingPeriod"): lambda a: _seconds(a[0]),
    ("NodeRegistry", "slash"): (
        lambda a: f"node {hex0x(a[0])}, {format_nds(a[1])}, reason {bytes32_to_text(a[2])!r}"
    ),
    ("RewardDistributor", "setEpochBudget"): lambda a: format_nds(a[0]),
    ("RewardDistributor", "setChallengePeriod"): lambda a: _seconds(a[0]),
    ("RewardDistributor", "grantRole"): lambda a: f"{_role(a[0])}, {a[1]}",
    ("RewardDistributor", "revokeRole"): lambda a: f"{_role(a[0])}, {a[1]}",
    ("RewardDistributor", "revokeEpoch"): lambda a: f"epoch {a[0]}, root {hex0x(a[1])}",
}


async def governance_round(chain: Chain) -> int:
    """Seconds from proposing to the earliest execution: voting delay + period + timelock."""
    governor = chain.contract("NodusGovernor")
    timelock = chain.contract("TimelockController")
    delay = int(await rpc(chain, governor.functions.votingDelay().call()))
    period = int(await rpc(chain, governor.functions.votingPeriod().call()))
    min_delay = int(await rpc(chain, timelock.functions.getMinDelay().call()))
    return delay + period + min_delay + 1


async def oracle_holders(chain: Chain) -> list[ChecksumAddress]:
    """Who holds ORACLE_ROLE now (AccessControl does not enumerate: from RoleGranted logs)."""
    from eth_utils.address import to_checksum_address

    rewards = chain.contract("RewardDistributor")
    latest = int(await rpc(chain, chain.w3.eth.block_number))
    granted = await get_logs(
        chain,
        rewards.events.RoleGranted(),
        from_block=chain.deployment.start_block,
        to_block=latest,
        argument_filters={"role": ORACLE_ROLE},
    )
    holders: list[ChecksumAddress] = []
    for account in dict.fromkeys(to_checksum_address(e["args"]["account"]) for e in granted):
        if await rpc(chain, rewards.functions.hasRole(ORACLE_ROLE, account).call()):
            holders.append(account)
    return holders
