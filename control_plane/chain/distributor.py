"""Typed reads of the RewardDistributor (and SubscriptionManager's accrued revenue) and the
calldata of the oracle's calls.

Reads go through the chain reader's `call` (its retries, backoff and circuit breaker); the reads
of one view are pinned to one block, so they agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.types import BlockIdentifier, LogReceipt

from control_plane.chain.client import LogQueryRejected, Web3ChainReader, hex0x
from control_plane.chain.contracts import contract, load_abi


@dataclass(frozen=True, slots=True)
class PendingRoot:
    epoch: int
    root: str  # 0x-hex
    data_hash: str  # 0x-hex
    total_cumulative: int
    valid_at: int  # unix seconds: acceptable from then on


@dataclass(frozen=True, slots=True)
class DistributorState:
    """The RewardDistributor at one block."""

    block_number: int
    block_timestamp: int
    current_epoch: int  # last settled epoch (accepted or revoked)
    root_epoch: int  # epoch of the current root (0: none accepted yet)
    current_root: str
    current_data_hash: str
    total_cumulative: int
    total_funded: int
    epoch_budget: int
    challenge_period: int
    pending: PendingRoot | None

    def settled(self, epoch: int) -> Settlement | None:
        """How a proposed `epoch` ended, from the state alone: the root epoch only grows, so an
        epoch is accepted iff the root epoch reached it, and revoked iff it was settled while
        the root epoch stayed below it. None while it is pending (or never proposed)."""
        if epoch > self.current_epoch:
            return None
        return "revoked" if self.root_epoch < epoch else "accepted"

    @property
    def budget(self) -> int:
        """The most the next epoch may add: the epoch budget, capped by what the pool holds
        beyond what accepted roots already promise."""
        return max(0, min(self.epoch_budget, self.total_funded - self.total_cumulative))


@dataclass(frozen=True, slots=True)
class ClaimView:
    """What a claim needs, read at one block."""

    root_epoch: int
    current_root: str
    claimed: int


Settlement = Literal["accepted", "revoked"]


class DistributorReads(Protocol):
    """The RewardDistributor (and SubscriptionManager's accrued revenue) as the oracle and the
    rewards API read it: part of every `ChainReader` (`chain.distributor`)."""

    address: str
    subscriptions_address: str

    async def state(self) -> DistributorState: ...
    async def claim_view(self, account: str) -> ClaimView: ...
    async def is_oracle(self, account: str) -> bool: ...
    async def accrued_revenue(self) -> int: ...
    async def total_funded(self) -> int: ...
    async def total_claimed(self) -> int: ...
    async def settlement_tx(self, epoch: int, from_block: int) -> tuple[Settlement, str] | None: ...
    def propose_calldata(
        self, epoch: int, root: bytes, total_cumulative: int, data_hash: bytes
    ) -> bytes: ...
    def accept_calldata(self) -> bytes: ...
    def flush_calldata(self) -> bytes: ...


class RewardDistributorReader:
    """DistributorReads over a Web3ChainReader's connection (its retries and breaker)."""

    def __init__(self, reader: Web3ChainReader) -> None:
        self.reader = reader
        self.distributor: AsyncContract = contract(
            reader.w3, reader.deployment, "RewardDistributor"
        )
        self.subscriptions: AsyncContract = contract(
            reader.w3, reader.deployment, "SubscriptionManager"
        )
        self.address = reader.deployment.addresses["RewardDistributor"].lower()
        self.subscriptions_address = reader.deployment.addresses["SubscriptionManager"].lower()
        events = {
            e["name"]: hex0x(event_abi_to_log_topic(_event(e)))
            for e in load_abi("RewardDistributor")
            if e.get("type") == "event"
        }
        self._settled_topics: dict[str, Settlement] = {
            events["RootAccepted"]: "accepted",
            events["RootRevoked"]: "revoked",
            events["RootWithdrawn"]: "revoked",  # the oracle withdrew it: settled, pays nothing
        }

    async def _view(self, name: str, *args: object, block: BlockIdentifier = "latest") -> object:
        function = self.distributor.get_function_by_name(name)(*args)
        result: object = await self.reader.call(
            lambda: function.call(block_identifier=block), function=name
        )
        return result

    async def _uint(self, name: str, *args: object, block: BlockIdentifier = "latest") -> int:
        value = await self._view(name, *args, block=block)
        assert isinstance(value, int)
        return value

    async def _bytes32(self, name: str, block: BlockIdentifier = "latest") -> str:
        value = await self._view(name, block=block)
        assert isinstance(value, bytes)
        return hex0x(value)

    async def state(self) -> DistributorState:
        head = await self.reader.block_header("latest")
        at = head.number
        pending_raw: Any = await self._view("pendingRoot", block=at)
        root, data_hash, total, epoch, valid_at = pending_raw
        pending = (
            PendingRoot(
                epoch=int(epoch),
                root=hex0x(root),
                data_hash=hex0x(data_hash),
                total_cumulative=int(total),
                valid_at=int(valid_at),
            )
            if int(epoch) > 0
            else None
        )
        return DistributorState(
            block_number=at,
            block_timestamp=head.timestamp,
            current_epoch=await self._uint("currentEpoch", block=at),
            root_epoch=await self._uint("rootEpoch", block=at),
            current_root=await self._bytes32("currentRoot", block=at),
            current_data_hash=await self._bytes32("currentDataHash", block=at),
            total_cumulative=await self._uint("totalCumulative", block=at),
            total_funded=await self._uint("totalFunded", block=at),
            epoch_budget=await self._uint("epochBudget", block=at),
            challenge_period=await self._uint("challengePeriod", block=at),
            pending=pending,
        )

    async def claim_view(self, account: str) -> ClaimView:
        at = await self.reader.block_number()
        checksum = AsyncWeb3.to_checksum_address(account)
        return ClaimView(
            root_epoch=await self._uint("rootEpoch", block=at),
            current_root=await self._bytes32("currentRoot", block=at),
            claimed=await self._uint("claimed", checksum, block=at),
        )

    async def is_oracle(self, account: str) -> bool:
        role = await self._view("ORACLE_ROLE")
        has = await self._view("hasRole", role, AsyncWeb3.to_checksum_address(account))
        return bool(has)

    async def accrued_revenue(self) -> int:
        """The reward share of subscription revenue not yet flushed into the pool."""
        function = self.subscriptions.functions.accruedRewards()
        accrued: Any = await self.reader.call(lambda: function.call(), function="accruedRewards")
        return int(accrued)

    async def total_funded(self) -> int:
        """RewardDistributor.totalFunded: everything that entered the pool through `fund`."""
        return await self._uint("totalFunded")

    async def total_claimed(self) -> int:
        """RewardDistributor.totalClaimed: everything paid out by claims."""
        return await self._uint("totalClaimed")

    async def settlement_tx(self, epoch: int, from_block: int) -> tuple[Settlement, str] | None:
        """The `RootAccepted` or `RootRevoked` event of `epoch` at or after `from_block`: how it
        was settled, and by which transaction. None if there is none (or the node refuses a
        query that wide: the caller infers the outcome from the state instead)."""
        try:
            logs = await self._settlement_logs(epoch, from_block)
        except LogQueryRejected:
            return None
        for entry in logs:
            status = self._settled_topics.get(hex0x(entry["topics"][0]))
            if status is not None:
                return status, hex0x(entry["transactionHash"])
        return None

    async def _settlement_logs(self, epoch: int, from_block: int) -> list[LogReceipt]:
        return await self.reader.get_logs(
            {
                "fromBlock": from_block,
                "toBlock": "latest",
                "address": self.distributor.address,
                "topics": [
                    list(self._settled_topics),
                    "0x" + epoch.to_bytes(32, "big").hex(),
                ],
            }
        )

    # Calldata of the oracle's calls

    def propose_calldata(
        self, epoch: int, root: bytes, total_cumulative: int, data_hash: bytes
    ) -> bytes:
        return _calldata(
            self.distributor, "proposeRoot", [epoch, root, total_cumulative, data_hash]
        )

    def accept_calldata(self) -> bytes:
        return _calldata(self.distributor, "acceptRoot", [])

    def flush_calldata(self) -> bytes:
        return _calldata(self.subscriptions, "flushRevenue", [])


def _calldata(target: AsyncContract, function: str, args: list[Any]) -> bytes:
    return bytes.fromhex(target.encode_abi(function, args=args)[2:])


def _event(entry: dict[str, Any]) -> ABIEvent:
    event: ABIEvent = entry  # type: ignore[assignment]
    return event
