"""Contract ABIs from the Foundry build and addresses from `deployments/<chain id>.json`.

The deploy script (contracts/script/Deploy.s.sol) writes the deployments file; `forge build`
writes the ABIs under `contracts/out/<Name>.sol/<Name>.json`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeAlias

from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.contract import AsyncContract

from control_plane.paths import DEFAULT_ARTIFACTS_DIR, DEFAULT_DEPLOYMENTS_DIR

# Any provider (HTTP today; WebSocket or IPC later): the contract objects do not care.
Web3Client: TypeAlias = AsyncWeb3[Any]

CONTRACT_NAMES: Final = (
    "NDSToken",
    "SubscriptionManager",
    "NodeRegistry",
    "RewardDistributor",
    "NodusGovernor",
    "TimelockController",
    "NodusSwap",
    "TimingGuard",
)


class DeploymentError(Exception):
    """The deployments file or a contract artifact is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where each Nodus contract lives on one chain, and the block to start indexing from."""

    chain_id: int
    start_block: int
    addresses: dict[str, ChecksumAddress]

    @classmethod
    def from_file(cls, path: Path) -> Deployment:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DeploymentError(f"no deployments file at {path}; run scripts/deploy") from exc
        except json.JSONDecodeError as exc:
            raise DeploymentError(f"{path} is not valid JSON: {exc}") from exc
        missing = [name for name in CONTRACT_NAMES if name not in raw]
        if missing or "chainId" not in raw or "startBlock" not in raw:
            raise DeploymentError(f"{path} lacks {missing or ['chainId/startBlock']}")
        return cls(
            chain_id=int(raw["chainId"]),
            start_block=int(raw["startBlock"]),
            addresses={name: AsyncWeb3.to_checksum_address(raw[name]) for name in CONTRACT_NAMES},
        )

    @classmethod
    def for_chain(cls, chain_id: int, directory: Path = DEFAULT_DEPLOYMENTS_DIR) -> Deployment:
        deployment = cls.from_file(directory / f"{chain_id}.json")
        if deployment.chain_id != chain_id:
            raise DeploymentError(
                f"{directory}/{chain_id}.json is for chain {deployment.chain_id}, not {chain_id}"
            )
        return deployment


@cache
def load_abi(name: str, artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR) -> list[dict[str, Any]]:
    """The ABI of contract `name` from the Foundry build output."""
    path = artifacts_dir / f"{name}.sol" / f"{name}.json"
    try:
        abi: list[dict[str, Any]] = json.loads(path.read_text())["abi"]
    except FileNotFoundError as exc:
        raise DeploymentError(f"no artifact at {path}; run forge build") from exc
    return abi


def node_id_of(operator: str, salt: bytes) -> str:
    """`NodeRegistry.nodeIdOf`: the id `operator` gets by registering with the 32-byte `salt`,
    keccak256(abi.encode(operator, salt)), as 0x-prefixed lowercase hex."""
    return "0x" + keccak(abi_encode(["address", "bytes32"], [operator, salt])).hex()


def new_node_salt() -> bytes:
    """A fresh random salt for `NodeRegistry.register`."""
    return secrets.token_bytes(32)


def contract(
    w3: Web3Client, deployment: Deployment, name: str, artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR
) -> AsyncContract:
    """A web3 contract object for the deployed contract `name`."""
    return w3.eth.contract(address=deployment.addresses[name], abi=load_abi(name, artifacts_dir))
