"""The /metrics collector of domain state. prometheus_client collectors are synchronous, so the
async route first `refresh()`es a snapshot (the database in one read-only transaction, a few
chain views), then renders the registry, whose `collect()` here only formats that snapshot: the
event loop never blocks on a query.

A scrape with the database or the chain down still answers: what that source feeds is absent
and `nodus_metrics_source_up{source="database"|"chain"}` is 0."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from control_plane.chain.client import ChainReader
from control_plane.chain.distributor import PendingRoot
from control_plane.jobs import Services
from control_plane.state_metrics.queries import DatabaseState, read_database_state

log = logging.getLogger("nodus.metrics")

DATABASE_BUDGET_SECONDS = 5.0  # the whole read, connecting included
STATEMENT_TIMEOUT_MS = 2000  # each query
CHAIN_BUDGET_SECONDS = 3.0
# The chain views change once a block at most; replicas scraped every 15 s need not re-read.
CHAIN_MAX_AGE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ChainState:
    head_block: int
    head_timestamp: int
    accepted_cumulative: int  # what accepted roots promise in total
    total_funded: int
    total_claimed: int
    accrued_revenue: int  # the reward share of revenue not yet flushed into the pool
    pending: PendingRoot | None


async def read_chain_state(chain: ChainReader) -> ChainState:
    distributor = chain.distributor
    state = await distributor.state()
    return ChainState(
        head_block=state.block_number,
        head_timestamp=state.block_timestamp,
        accepted_cumulative=state.total_cumulative,
        total_funded=state.total_funded,
        total_claimed=await distributor.total_claimed(),
        accrued_revenue=await distributor.accrued_revenue(),
        pending=state.pending,
    )


Rows = dict[tuple[str, ...], float]


def _gauge(name: str, doc: str, value: float | None) -> Metric:
    """A gauge without labels; listed without a sample when its value is unknown."""
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def _family(name: str, doc: str, labels: list[str], rows: Rows | None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted((rows or {}).items()):
        family.add_metric(list(key), value)
    return family


def _by(counts: dict[str, int] | None) -> Rows | None:
    return None if counts is None else {(key,): value for key, value in counts.items()}


class StateMetrics(Collector):
    """Domain state for /metrics; `refresh()` before each render."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.database: DatabaseState | None = None
        self.chain: ChainState | None = None
        self.cursor_timestamp: int | None = None
        self._cursor_read: tuple[int, int] | None = None  # (block, its timestamp)
        self._chain_read_at = -CHAIN_MAX_AGE_SECONDS
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:  # concurrent scrapes share one read
            await asyncio.gather(self._refresh_database(), self._refresh_chain())
            await self._refresh_cursor_timestamp()

    async def _refresh_database(self) -> None:
        services = self.services
        try:
            async with asyncio.timeout(DATABASE_BUDGET_SECONDS):
                self.database = await read_database_state(
                    services.sessions, services.chain.chain_id, STATEMENT_TIMEOUT_MS
                )
        except Exception as exc:
            self.database = None
            log.warning("metrics: database state unavailable", extra={"reason": repr(exc)})

    async def _refresh_chain(self) -> None:
        if time.monotonic() - self._chain_read_at < CHAIN_MAX_AGE_SECONDS:
            return
        try:
            async with asyncio.timeout(CHAIN_BUDGET_SECONDS):
                self.chain = await read_chain_state(self.services.chain)
            self._chain_read_at = time.monotonic()
        except Exception as exc:
            self.chain = None
            log.warning("metrics: chain state unavailable", extra={"reason": repr(exc)})

    async def _refresh_cursor_timestamp(self) -> None:
        cursor = None if self.database is None else self.database.cursor_block
        if cursor is None or self.chain is None or cursor < 0:
            self.cursor_timestamp = None
            return
        if self._cursor_read is not None and self._cursor_read[0] == cursor:
            self.cursor_timestamp = self._cursor_read[1]
            return
        try:
            async with asyncio.timeout(CHAIN_BUDGET_SECONDS):
                self.cursor_timestamp = await self.services.chain.block_timestamp(cursor)
            self._cursor_read = (cursor, self.cursor_timestamp)
        except Exception:
            self.cursor_timestamp = None

    # Rendering (synchronous: formats the last snapshot). Every family is always listed; a
    # value its source could not give is left out.

    def collect(self) -> Iterator[Metric]:
        db, chain = self.database, self.chain
        yield _family(
            "nodus_metrics_source_up",
            "1 if this scrape read the source (database, chain), else 0",
            ["source"],
            {("database",): float(db is not None), ("chain",): float(chain is not None)},
        )
        yield from self._indexer(db, chain)
        yield from self._economy(db)
        yield from self._per_node(db)
        yield from self._rewards(db, chain)
        yield _family(
            "nodus_oracle_outbox",
            "Oracle outbox rows by state",
            ["state"],
            _by(None if db is None else db.outbox),
        )
        age: float | None = None
        if db is not None and db.now is not None:
            oldest = db.outbox_oldest_unsent
            age = 0.0 if oldest is None else max(0.0, (db.now - oldest).total_seconds())
        yield _gauge(
            "nodus_oracle_outbox_oldest_pending_seconds",
            "Age of the oldest outbox row not final yet (0 if none)",
            age,
        )
        yield _family(
            "nodus_probe_rounds",
            "Probe rounds in the last hour by verdict and reason",
            ["verdict", "reason"],
            None if db is None else {key: float(n) for key, n in db.probe_rounds.items()},
        )

    def _indexer(self, db: DatabaseState | None, chain: ChainState | None) -> Iterator[Metric]:
        cursor = None if db is None else db.cursor_block
        head = None if chain is None else chain.head_block
        yield _gauge("nodus_indexer_head_block", "Chain head", head)
        yield _gauge("nodus_indexer_cursor_block", "Last block mirrored", cursor)
        lag_blocks = lag_seconds = None
        if cursor is not None and chain is not None:
            lag_blocks = max(0, chain.head_block - cursor)
            if self.cursor_timestamp is not None:
                lag_seconds = max(0, chain.head_timestamp - self.cursor_timestamp)
        yield _gauge(
            "nodus_indexer_lag_blocks", "Head minus cursor (confirmations included)", lag_blocks
        )
        yield _gauge(
            "nodus_indexer_lag_seconds", "Head block time minus cursor block time", lag_seconds
        )

    def _economy(self, db: DatabaseState | None) -> Iterator[Metric]:
        yield _family(
            "nodus_payments",
            "Payments by state (active: the expiry it bought is ahead)",
            ["state"],
            _by(None if db is None else db.payments),
        )
        yield _gauge(
            "nodus_subscriptions_active",
            "Subscribers whose expiry is in the future",
            None if db is None else db.subscriptions_active,
        )
        yield _family(
            "nodus_nodes",
            "Nodes by on-chain status",
            ["status"],
            _by(None if db is None else db.nodes),
        )
        yield _gauge(
            "nodus_nodes_online",
            "Live nodes whose agent reported recently",
            None if db is None else db.nodes_online,
        )
        yield _family(
            "nodus_configs",
            "Device configs by status",
            ["status"],
            _by(None if db is None else db.configs),
        )

    def _per_node(self, db: DatabaseState | None) -> Iterator[Metric]:
        nodes = [] if db is None else db.node_states
        yield _family(
            "nodus_node_revision_desired",
            "Desired peer-set revision per node",
            ["node"],
            {(n.node,): n.revision_desired for n in nodes},
        )
        yield _family(
            "nodus_node_revision_reported",
            "Revision the node's agent last reported",
            ["node"],
            {(n.node,): n.revision_reported for n in nodes if n.revision_reported is not None},
        )
        yield _family(
            "nodus_node_peers",
            "Active configs (peers) per node",
            ["node"],
            {(n.node,): n.peers for n in nodes},
        )
        yield _family(
            "nodus_node_health",
            "1 for the node's latest probe verdict (last hour)",
            ["node", "verdict", "reason"],
            None if db is None else dict.fromkeys(db.node_health, 1.0),
        )
        yield _family(
            "nodus_node_score",
            "Latest scored epoch's score (0..1)",
            ["node"],
            None if db is None else {(node,): v for node, v in db.node_scores.items()},
        )
        yield _family(
            "nodus_node_score_part",
            "Its breakdown (0..1)",
            ["node", "part"],
            None if db is None else {(n, part): v for n, part, v in db.node_score_parts},
        )
        yield _family(
            "nodus_node_reward_wei",
            "Latest scored epoch's allocation to the node",
            ["node"],
            None if db is None else {(n,): wei for n, wei in db.node_rewards_wei.items()},
        )

    def _rewards(self, db: DatabaseState | None, chain: ChainState | None) -> Iterator[Metric]:
        yield _family(
            "nodus_epochs",
            "Reward epochs (mirrored) by state",
            ["state"],
            _by(None if db is None else db.epochs),
        )
        posted_at = None if db is None else db.epoch_last_posted
        yield _gauge(
            "nodus_epoch_last_posted_timestamp_seconds",
            "When the newest epoch's root was mirrored",
            None if posted_at is None else posted_at.timestamp(),
        )
        yield _gauge(
            "nodus_epoch_length_seconds",
            "Configured reward epoch length",
            self.services.settings.reward_posting.epoch_seconds,
        )
        yield _gauge(
            "nodus_rewards_posted_wei",
            "Cumulative reward total of the newest epoch not revoked",
            None if db is None else db.rewards_posted_wei,
        )
        claimed = claimable = balance = seconds_left = verified = None
        if chain is not None:
            claimed = chain.total_claimed
            claimable = max(0, chain.accepted_cumulative - chain.total_claimed)
            balance = max(0, chain.total_funded - chain.total_claimed)
            pending = chain.pending
            if pending is not None:
                seconds_left = max(0, pending.valid_at - chain.head_timestamp)
            if db is not None:
                ours = None if pending is None else db.publication_roots.get(pending.epoch)
                verified = float(pending is not None and ours == pending.root.lower())
        yield _gauge("nodus_rewards_claimed_wei", "Rewards claimed (totalClaimed)", claimed)
        yield _gauge("nodus_rewards_claimable_wei", "Accepted and not yet claimed", claimable)
        yield _gauge(
            "nodus_reward_pool_balance_wei",
            "What the reward pool holds: funded minus claimed",
            balance,
        )
        yield _gauge(
            "nodus_rewards_pending_root_seconds_left",
            "Seconds (chain time) until the pending root's challenge window ends",
            seconds_left,
        )
        yield _gauge(
            "nodus_rewards_pending_root_verified",
            "1 if the pending root matches the one this control plane computed, else 0",
            verified,
        )
        revenue: Rows = {}
        if db is not None:
            revenue[("total",)] = db.revenue_wei
        if chain is not None:
            revenue[("rewards_pool_unflushed",)] = chain.accrued_revenue
        yield _family(
            "nodus_revenue_wei",
            "Subscription revenue: total paid (payments) and the reward share not yet flushed",
            ["recipient"],
            revenue,
        )
