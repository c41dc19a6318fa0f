"""The chain indexer: follows the Nodus contracts' events into the database.

`sync_chain` (a job) reads from a stored cursor up to the chain head in chunks of `eth_getLogs`
(halved on an RPC error, down to one block, and restored after a success) and writes, keyed by
chain position so a chunk read twice writes nothing new:
- `Subscribed` -> a payment row, and the subscriber's expiry (the latest payment's);
- NodeRegistry events -> the node's `chain_nodes` row, re-read from the contract (operator,
  agent, stake, status, active); `MinStakeChanged` -> every node's row re-read;
- `RootProposed` / `RootAccepted` / `RootRevoked` / `RootWithdrawn` -> `reward_epochs`.

Reorgs: the hashes of the last blocks indexed (at least the confirmation window) are stored.
Before reading on, the newest stored hash is compared with the chain; on a mismatch the indexer
walks back to the last block that still matches (the fork point) and, in the same transaction,
deletes what later blocks said (payments, reward epochs; nodes they touched are re-read), rewinds
the cursor and reads on. While reading, each chunk's block hashes must link up with each other,
with the stored ones and with its logs, or the run stops (the chain moved under it) and the next
run sorts it out.

An unreachable chain ends the run cleanly: what was indexed so far is kept (each chunk is
written whole, after all its reads), the rest waits for the next run.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncSession
from web3.types import FilterParams, LogReceipt

from control_plane.chain.client import (
    BlockHeader,
    ChainReader,
    LogQueryRejected,
    OnChainNode,
    hex0x,
)
from control_plane.chain.clock import later_of_clock_and
from control_plane.chain.contracts import Deployment, load_abi
from control_plane.errors import ChainUnavailable
from control_plane.indexer.abi_words import decode_words
from control_plane.indexer.identity import identity_still_holds
from control_plane.indexer.repository import ChainRepository
from control_plane.jobs import Services
from control_plane.subscriptions.expiry import (
    bump_nodes_of,
    reconcile_direct_reads,
)
from control_plane.subscriptions.service import PaymentEvent, record_payments, rollback_payments

log = logging.getLogger("nodus.indexer")

REORG_WINDOW = 128
"""Blocks whose hashes are kept (at least; more if the confirmation depth is larger)."""
MAX_CHUNKS_PER_RUN = 500
"""Bounds one run's transaction while catching up; the next run goes on."""

NODE_EVENTS = frozenset(
    {
        "NodeRegistered",
        "AgentChanged",
        "StakeIncreased",
        "ExitRequested",
        "StakeWithdrawn",
        "Slashed",
        "MetadataChanged",
    }
)
INDEXED_EVENTS: dict[str, frozenset[str]] = {
    "SubscriptionManager": frozenset({"Subscribed"}),
    "NodeRegistry": NODE_EVENTS | {"MinStakeChanged"},
    # RootWithdrawn (the oracle withdrew its own root) settles an epoch as a revocation does.
    "RewardDistributor": frozenset(
        {"RootProposed", "RootAccepted", "RootRevoked", "RootWithdrawn"}
    ),
}


class ChainMoved(Exception):
    """The chain reorganised while a chunk was being read; the next run rewinds."""


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded log of a Nodus contract."""

    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class _EventType:
    contract: str
    name: str
    indexed: tuple[tuple[str, str], ...]  # (name, type) of the topics after the first
    data: tuple[tuple[str, str], ...]  # (name, type) of the data


class EventDecoder:
    """Decodes the indexed events of the Nodus contracts with their Foundry ABIs."""

    def __init__(self, deployment: Deployment, artifacts_dir: Path) -> None:
        self.types: dict[tuple[str, str], _EventType] = {}  # (address, topic0) -> type
        self.addresses = [deployment.addresses[name] for name in INDEXED_EVENTS]
        topics: list[str] = []
        for contract_name, names in INDEXED_EVENTS.items():
            address = deployment.addresses[contract_name].lower()
            for entry in load_abi(contract_name, artifacts_dir):
                if entry.get("type") != "event" or entry["name"] not in names:
                    continue
                topic = hex0x(event_abi_to_log_topic(cast(ABIEvent, entry)))
                inputs = entry["inputs"]
                self.types[(address, topic)] = _EventType(
                    contract=contract_name,
                    name=entry["name"],
                    indexed=tuple((i["name"], i["type"]) for i in inputs if i["indexed"]),
                    data=tuple((i["name"], i["type"]) for i in inputs if not i["indexed"]),
                )
                topics.append(topic)
        self.topics = sorted(set(topics))

    def filter(self, start: int, end: int) -> FilterParams:
        return {
            "fromBlock": start,
            "toBlock": end,
            "address": self.addresses,
            "topics": [self.topics],
        }

    def decode(self, entry: LogReceipt) -> Event | None:
        topics = [hex0x(t) for t in entry["topics"]]
        if not topics:
            return None
        event_type = self.types.get((str(entry["address"]).lower(), topics[0]))
        if event_type is None:
            return None
        args: dict[str, Any] = {}
        for (name, type_), topic in zip(event_type.indexed, topics[1:], strict=True):
            raw = bytes.fromhex(topic[2:])
            # An indexed dynamic value is only its hash in the topic: keep the hash.
            args[name] = raw if _is_dynamic(type_) else decode_words([type_], raw)[0]
        values = decode_words([t for _, t in event_type.data], bytes(entry["data"]))
        args.update(zip((name for name, _ in event_type.data), values, strict=True))
        return Event(
            contract=event_type.contract,
            name=event_type.name,
            args=args,
            block_number=int(entry["blockNumber"]),
            block_hash=hex0x(entry["blockHash"]),
            tx_hash=hex0x(entry["transactionHash"]),
            log_index=int(entry["logIndex"]),
        )


def _is_dynamic(abi_type: str) -> bool:
    return abi_type in ("string", "bytes") or abi_type.endswith("[]") or "(" in abi_type


@dataclass(slots=True)
class SyncReport:
    """What one run did (logged; tests read it through `index_chain`)."""

    from_block: int = 0
    next_block: int = 0
    head: int = 0
    chunks: int = 0
    events: int = 0
    payments_added: int = 0
    payments_removed: int = 0
    fork_point: int | None = None
    halvings: int = 0
    renewed: set[str] = field(default_factory=set)  # subscribers whose peers are back
    nodes_bumped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Chunk:
    start: int
    end: int
    hashes: dict[int, str]
    events: list[Event]
    nodes: dict[str, tuple[OnChainNode, int]] = field(default_factory=dict)


async def sync_chain(services: Services, session: AsyncSession) -> None:
    """The chain-sync job. A chain failure ends the run, keeping what it indexed."""
    if not await identity_still_holds(services, session):
        return
    report = SyncReport()
    try:
        await index_chain(services, session, report)
    except (ChainUnavailable, LogQueryRejected, ChainMoved) as exc:
        log.warning(
            "chain sync stopped; the next run resumes",
            extra={"reason": f"{type(exc).__name__}: {exc}", "next_block": report.next_block},
        )
        return
    if report.chunks or report.fork_point is not None:
        log.info(
            "chain synced",
            extra={
                "from_block": report.from_block,
                "next_block": report.next_block,
                "events": report.events,
                "payments_added": report.payments_added,
                "payments_removed": report.payments_removed,
                "fork_point": report.fork_point,
                "nodes_bumped": len(report.nodes_bumped),
            },
        )


async def index_chain(
    services: Services, session: AsyncSession, report: SyncReport | None = None
) -> SyncReport:
    """One indexing run, in the caller's transaction; raises on chain failures, after keeping
    the chunks it finished in the session.

    Renewals found on the way bump their nodes' revisions once, at the end of the run (after
    every subscriber row it touches is locked, so node rows are locked last, as everywhere)."""
    report = report or SyncReport()
    with services.tracer.start_as_current_span("indexer sync") as span:
        try:
            await _Indexer(services, session, report).run()
            now = datetime.now(UTC)
            report.renewed.update(await reconcile_direct_reads(session, services.chain, now))
        except (ChainUnavailable, LogQueryRejected, ChainMoved) as exc:
            report.nodes_bumped = await bump_nodes_of(session, sorted(report.renewed))
            span.set_attribute("nodus.indexer.stopped", type(exc).__name__)
            raise
        finally:
            _describe_run(span, report)
        report.nodes_bumped = await bump_nodes_of(session, sorted(report.renewed))
    return report


def _describe_run(span: Span, report: SyncReport) -> None:
    span.set_attribute("nodus.indexer.from_block", report.from_block)
    span.set_attribute("nodus.indexer.next_block", report.next_block)
    span.set_attribute("nodus.indexer.head", report.head)
    span.set_attribute("nodus.indexer.chunks", report.chunks)
    span.set_attribute("nodus.indexer.events", report.events)
    span.set_attribute("nodus.indexer.halvings", report.halvings)
    if report.fork_point is not None:
        span.set_attribute("nodus.indexer.fork_point", report.fork_point)


class _Indexer:
    def __init__(self, services: Services, session: AsyncSession, report: SyncReport) -> None:
        self.chain: ChainReader = services.chain
        self.chain_id = services.chain.chain_id
        self.deployment = services.chain.deployment
        self.settings = services.settings
        self.chain_reads = services.chain_reads
        self.session = session
        self.repository = ChainRepository(session)
        self.decoder = EventDecoder(self.deployment, services.settings.artifacts_dir)
        self.window = max(REORG_WINDOW, services.settings.confirmations + 1)
        self.report = report
        self.tracer = services.tracer
        self.reorgs = services.metrics.indexer_reorgs

    async def run(self) -> SyncReport:
        report = self.report
        cursor = await self.repository.lock_cursor(self.chain_id, self.deployment.start_block)
        report.from_block = report.next_block = cursor
        head = await self.chain.block_header("latest")
        report.head = head.number
        now = later_of_clock_and(head.timestamp)

        fork = await self._find_fork(head.number)
        if fork is not None:
            cursor = await self._rewind(fork, now)
            report.fork_point, report.next_block = fork, cursor

        full = self.settings.indexer_chunk_blocks
        size = full
        start = cursor
        while start <= head.number and report.chunks < MAX_CHUNKS_PER_RUN:
            end = min(start + size - 1, head.number)
            try:
                chunk = await self._read_traced(start, end, head.number)
            except (LogQueryRejected, ChainUnavailable) as exc:
                if end == start:
                    raise
                size = (end - start + 1) // 2
                report.halvings += 1
                log.info(
                    "reading blocks failed; halving the range",
                    extra={"from_block": start, "blocks": size, "reason": str(exc)},
                )
                continue
            await self._write(chunk, head.number, now)
            report.chunks += 1
            start = report.next_block = end + 1
            size = full
        return report

    # Reorgs

    async def _find_fork(self, head: int) -> int | None:
        """None if the newest stored block is still on the chain; else the newest stored block
        that is (the fork point), or, if none is, the block before the oldest stored one."""
        stored = await self.repository.recent_blocks(self.chain_id, self.window)
        if not stored:
            return None
        number, hash_ = stored[0]
        if number <= head and (await self.chain.block_header(number)).hash == hash_:
            return None
        for number, hash_ in stored[1:]:
            if number <= head and (await self.chain.block_header(number)).hash == hash_:
                return number
        oldest = stored[-1][0]
        log.error(
            "reorg deeper than the stored block hashes; rewinding past all of them",
            extra={"oldest_stored": oldest},
        )
        return max(oldest - 1, self.deployment.start_block - 1)

    async def _rewind(self, fork: int, now: datetime) -> int:
        """Forgets everything blocks after `fork` said, in this transaction; returns the new
        cursor. Nodes those blocks touched are re-read from the chain (before any write)."""
        with self.tracer.start_as_current_span("indexer rewind") as span:
            span.set_attribute("nodus.indexer.fork_point", fork)
            cursor = await self._rewind_to(fork, now)
            span.set_attribute("nodus.indexer.payments_removed", self.report.payments_removed)
        self.reorgs.inc()
        return cursor

    async def _rewind_to(self, fork: int, now: datetime) -> int:
        touched = await self.repository.chain_nodes_updated_after(fork)
        nodes = [await self.chain.node(node_id) for node_id in touched]
        self.chain_reads.forget_expiries()
        removed = await rollback_payments(self.session, self.chain_id, fork, now)
        self.report.renewed.update(removed.renewed)
        for node in nodes:
            if node.status == "none":
                await self.repository.delete_chain_node(node.node_id)
            else:
                await self.repository.upsert_chain_node(node, fork)
        await self.repository.rollback_epochs_after(self.chain_id, fork)
        await self.repository.delete_blocks_after(self.chain_id, fork)
        await self.repository.set_cursor(self.chain_id, fork + 1)
        self.report.payments_removed += removed.count
        log.warning(
            "chain reorganised; rewound",
            extra={"fork_point": fork, "payments_removed": removed.count, "nodes_reread": touched},
        )
        return fork + 1

    # Reading

    async def _read_traced(self, start: int, end: int, head: int) -> _Chunk:
        with self.tracer.start_as_current_span("indexer batch") as span:
            span.set_attribute("nodus.indexer.from_block", start)
            span.set_attribute("nodus.indexer.to_block", end)
            chunk = await self._read(start, end, head)
            span.set_attribute("nodus.indexer.events", len(chunk.events))
            return chunk

    async def _read(self, start: int, end: int, head: int) -> _Chunk:
        """Every chain read a chunk needs, before any write: the hashes of its blocks within the
        reorg window (checked to link up), its logs (checked against those hashes), and the
        current state of the nodes its events touch."""
        hashes: dict[int, str] = {}
        first = max(start, head - self.window + 1)
        if first <= end:
            headers = [await self.chain.block_header(n) for n in range(first, end + 1)]
            self._check_links(headers, await self.repository.block_hash(self.chain_id, first - 1))
            hashes = {h.number: h.hash for h in headers}

        logs = await self.chain.get_logs(self.decoder.filter(start, end))
        events: list[Event] = []
        for entry in logs:
            event = self.decoder.decode(entry)
            if event is None:
                continue
            known = hashes.get(event.block_number)
            if known is not None and known != event.block_hash:
                raise ChainMoved(f"block {event.block_number} changed while reading its logs")
            events.append(event)
        events.sort(key=lambda e: (e.block_number, e.log_index))
        if hashes and (await self.chain.block_header(end)).hash != hashes[end]:
            raise ChainMoved(f"block {end} changed while reading")

        chunk = _Chunk(start, end, hashes, events)
        touched: dict[str, int] = {}
        for event in events:
            if event.name in NODE_EVENTS:
                touched[hex0x(event.args["nodeId"])] = event.block_number
            elif event.name == "MinStakeChanged":
                for node_id in await self.repository.chain_node_ids():
                    touched[node_id] = event.block_number
        for node_id, block in sorted(touched.items()):
            chunk.nodes[node_id] = (await self.chain.node(node_id), block)
        return chunk

    def _check_links(self, headers: Sequence[BlockHeader], stored_parent: str | None) -> None:
        if stored_parent is not None and headers[0].parent_hash != stored_parent:
            raise ChainMoved(f"block {headers[0].number} no longer builds on the indexed chain")
        for parent, child in itertools.pairwise(headers):
            if child.parent_hash != parent.hash:
                raise ChainMoved(f"blocks {parent.number}-{child.number} do not link up")

    # Writing

    async def _write(self, chunk: _Chunk, head: int, now: datetime) -> None:
        payments = [
            PaymentEvent(
                tx_hash=e.tx_hash,
                log_index=e.log_index,
                block_number=e.block_number,
                block_hash=e.block_hash,
                subscriber=e.args["subscriber"],
                payer=e.args["payer"],
                months=int(e.args["months"]),
                amount=int(e.args["paid"]),
                expires_at=datetime.fromtimestamp(int(e.args["expiresAt"]), UTC),
            )
            for e in chunk.events
            if e.name == "Subscribed"
        ]
        added = await record_payments(self.session, self.chain_id, payments, now)
        self.report.payments_added += added.count
        self.report.renewed.update(added.renewed)
        for node, block in chunk.nodes.values():
            if node.status == "none":  # gone from the chain since (a reorg not yet seen)
                await self.repository.delete_chain_node(node.node_id)
            else:
                await self.repository.upsert_chain_node(node, block)
        for event in chunk.events:
            if event.contract == "RewardDistributor":
                await self._write_epoch(event)
        await self.repository.store_blocks(self.chain_id, chunk.hashes)
        await self.repository.prune_blocks_before(self.chain_id, head - self.window + 1)
        await self.repository.set_cursor(self.chain_id, chunk.end + 1)
        self.report.events += len(chunk.events)

    async def _write_epoch(self, event: Event) -> None:
        args = event.args
        if event.name == "RootProposed":
            await self.repository.insert_proposed_epoch(
                chain_id=self.chain_id,
                epoch=int(args["epoch"]),
                root=hex0x(args["root"]),
                total_cumulative=int(args["totalCumulative"]),
                data_hash=hex0x(args["dataHash"]),
                valid_at=datetime.fromtimestamp(int(args["validAt"]), UTC),
                tx_hash=event.tx_hash,
                log_index=event.log_index,
                block=event.block_number,
            )
            return
        status = "accepted" if event.name == "RootAccepted" else "revoked"
        settled = await self.repository.settle_epoch(
            chain_id=self.chain_id,
            epoch=int(args["epoch"]),
            status=status,
            tx_hash=event.tx_hash,
            log_index=event.log_index,
            block=event.block_number,
        )
        if not settled:
            log.debug("epoch already settled", extra={"epoch": int(args["epoch"])})
