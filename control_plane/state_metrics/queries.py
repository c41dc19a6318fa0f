"""The scrape-time reads of domain state: a few aggregate queries, all here, run by
`read_database_state` in one short read-only transaction bounded by a statement timeout."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.agent.models import Heartbeat
from control_plane.chain.outbox import OutboxTx
from control_plane.device_configs import DeviceConfig
from control_plane.indexer.models import ChainCursor, ChainNode, RewardEpoch
from control_plane.nodes.models import Node
from control_plane.nodes.repository import ONLINE_WINDOW
from control_plane.prober import reasons
from control_plane.prober.models import ProbeSample
from control_plane.rewards.posting.models import RewardPublication
from control_plane.rewards.score_models import NodeScoreRecord, OperatorAllocation
from control_plane.subscriptions.models import Payment, Subscriber

PROBE_ROUNDS_WINDOW = timedelta(hours=1)
UNSENT = ("built", "signed", "sent")  # outbox rows not final yet


@dataclass(frozen=True, slots=True)
class NodeState:
    node: str
    revision_desired: int
    revision_reported: int | None  # None: its agent never reported
    peers: int


@dataclass(slots=True)
class DatabaseState:
    """What PostgreSQL says, at one instant (one transaction)."""

    cursor_block: int | None = None  # last block mirrored; None before the first run
    payments: dict[str, int] = field(default_factory=dict)  # active | expired
    revenue_wei: int = 0
    subscriptions_active: int = 0
    nodes: dict[str, int] = field(default_factory=dict)  # on-chain status
    nodes_online: int = 0
    configs: dict[str, int] = field(default_factory=dict)  # active | revoked
    node_states: list[NodeState] = field(default_factory=list)
    node_health: list[tuple[str, str, str]] = field(default_factory=list)  # node, verdict, reason
    node_scores: dict[str, float] = field(default_factory=dict)
    node_score_parts: list[tuple[str, str, float]] = field(default_factory=list)
    node_rewards_wei: dict[str, int] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    epoch_last_posted: datetime | None = None
    rewards_posted_wei: int = 0
    publication_roots: dict[int, str] = field(default_factory=dict)  # epoch -> our root
    outbox: dict[str, int] = field(default_factory=dict)
    outbox_oldest_unsent: datetime | None = None
    probe_rounds: dict[tuple[str, str], int] = field(default_factory=dict)
    now: datetime | None = None  # the database's clock in that transaction


class StateQueries:
    """One method per aggregate; each is one query."""

    def __init__(self, session: AsyncSession, chain_id: int) -> None:
        self.session = session
        self.chain_id = chain_id

    async def now(self) -> datetime:
        value = await self.session.scalar(select(func.now()))
        assert isinstance(value, datetime)
        return value

    async def cursor_block(self) -> int | None:
        next_block = await self.session.scalar(
            select(ChainCursor.next_block).where(ChainCursor.chain_id == self.chain_id)
        )
        return None if next_block is None else int(next_block) - 1

    async def payments(self) -> tuple[dict[str, int], int]:
        """Payments by state (active: the expiry it bought is still ahead) and their sum."""
        state = case((Payment.expires_at > func.now(), "active"), else_="expired")
        rows = await self.session.execute(
            select(state, func.count(), func.coalesce(func.sum(Payment.amount), 0))
            .where(Payment.chain_id == self.chain_id)
            .group_by(state)
        )
        counts, total = {"active": 0, "expired": 0}, 0
        for name, count, amount in rows:
            counts[name] = int(count)
            total += int(amount)
        return counts, total

    async def subscriptions_active(self) -> int:
        count = await self.session.scalar(
            select(func.count()).where(Subscriber.expires_at > func.now())
        )
        return int(count or 0)

    async def nodes_by_status(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(ChainNode.status, func.count()).group_by(ChainNode.status)
        )
        return {str(status): int(count) for status, count in rows}

    async def nodes_online(self) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                Node.deleted_at.is_(None), Node.last_heartbeat_at > func.now() - ONLINE_WINDOW
            )
        )
        return int(count or 0)

    async def configs_by_status(self) -> dict[str, int]:
        status = case((DeviceConfig.revoked_at.is_(None), "active"), else_="revoked")
        rows = await self.session.execute(select(status, func.count()).group_by(status))
        counts = {"active": 0, "revoked": 0}
        counts.update({str(name): int(count) for name, count in rows})
        return counts

    async def node_states(self) -> list[NodeState]:
        """Each live node's desired revision, the one its agent last reported, and its peers."""
        peers = (
            select(func.count())
            .where(DeviceConfig.node_id == Node.id, DeviceConfig.revoked_at.is_(None))
            .scalar_subquery()
        )
        reported = (
            select(Heartbeat.applied_revision)
            .where(Heartbeat.node_id == Node.id)
            .order_by(Heartbeat.received_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(Node.id, Node.revision, reported, peers).where(Node.deleted_at.is_(None))
        )
        return [
            NodeState(str(node), int(desired), None if got is None else int(got), int(count))
            for node, desired, got, count in rows
        ]

    async def node_health(self) -> list[tuple[str, str, str]]:
        """Each node's latest probe round within the window: (node, up|down, reason code)."""
        answered = func.cardinality(ProbeSample.rtt_us) > 0
        rows = await self.session.execute(
            select(ProbeSample.node_id, answered, ProbeSample.error)
            .where(ProbeSample.round_at > func.now() - PROBE_ROUNDS_WINDOW)
            .order_by(ProbeSample.node_id, ProbeSample.round_at.desc(), ProbeSample.id.desc())
            .ext(distinct_on(ProbeSample.node_id))
        )
        return [
            (str(node), "up", reasons.OK) if ok else (str(node), "down", error or reasons.NO_ANSWER)
            for node, ok, error in rows
        ]

    async def probe_rounds(self) -> dict[tuple[str, str], int]:
        answered = func.cardinality(ProbeSample.rtt_us) > 0
        verdict = case((answered, "up"), else_="down")
        reason = case(
            (answered, reasons.OK), else_=func.coalesce(ProbeSample.error, reasons.NO_ANSWER)
        )
        rows = await self.session.execute(
            select(verdict, reason, func.count())
            .where(ProbeSample.round_at > func.now() - PROBE_ROUNDS_WINDOW)
            .group_by(verdict, reason)
        )
        return {(str(v), str(r)): int(count) for v, r, count in rows}

    async def latest_scores(self) -> list[tuple[str, str, int, dict[str, object]]]:
        """The latest scored epoch's rows: (node, operator, score ppm, breakdown)."""
        latest = (
            select(func.max(NodeScoreRecord.epoch))
            .where(NodeScoreRecord.chain_id == self.chain_id)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(
                NodeScoreRecord.node_id,
                NodeScoreRecord.operator,
                NodeScoreRecord.score_ppm,
                NodeScoreRecord.breakdown,
            ).where(NodeScoreRecord.chain_id == self.chain_id, NodeScoreRecord.epoch == latest)
        )
        return [(str(n), str(o), int(s), dict(b)) for n, o, s, b in rows]

    async def latest_allocations(self) -> dict[str, int]:
        """The latest scored epoch's allocation per operator."""
        latest = (
            select(func.max(OperatorAllocation.epoch))
            .where(OperatorAllocation.chain_id == self.chain_id)
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(OperatorAllocation.operator, OperatorAllocation.amount).where(
                OperatorAllocation.chain_id == self.chain_id, OperatorAllocation.epoch == latest
            )
        )
        return {str(operator): int(amount) for operator, amount in rows}

    async def epochs(self) -> tuple[dict[str, int], datetime | None, int]:
        """Mirrored epochs by state, when the newest was posted (mirrored), and the cumulative
        total of the newest one not revoked (everything posted so far)."""
        rows = await self.session.execute(
            select(RewardEpoch.status, func.count(), func.max(RewardEpoch.indexed_at))
            .where(RewardEpoch.chain_id == self.chain_id)
            .group_by(RewardEpoch.status)
        )
        counts = {"proposed": 0, "accepted": 0, "revoked": 0}
        last: datetime | None = None
        for status, count, indexed_at in rows:
            counts[str(status)] = int(count)
            last = indexed_at if last is None or indexed_at > last else last
        posted = await self.session.scalar(
            select(func.coalesce(func.max(RewardEpoch.total_cumulative), 0)).where(
                RewardEpoch.chain_id == self.chain_id, RewardEpoch.status != "revoked"
            )
        )
        return counts, last, int(posted or 0)

    async def publication_roots(self, newest: int = 5) -> dict[int, str]:
        rows = await self.session.execute(
            select(RewardPublication.epoch, RewardPublication.root)
            .where(RewardPublication.chain_id == self.chain_id)
            .order_by(RewardPublication.epoch.desc())
            .limit(newest)
        )
        return {int(epoch): str(root).lower() for epoch, root in rows}

    async def outbox(self) -> tuple[dict[str, int], datetime | None]:
        """Outbox rows by status, and when the oldest one not final yet was queued."""
        rows = await self.session.execute(
            select(OutboxTx.status, func.count(), func.min(OutboxTx.created_at))
            .where(OutboxTx.chain_id == self.chain_id)
            .group_by(OutboxTx.status)
        )
        counts = dict.fromkeys((*UNSENT, "mined", "failed"), 0)
        oldest: datetime | None = None
        for status, count, created in rows:
            counts[str(status)] = int(count)
            if status in UNSENT and (oldest is None or created < oldest):
                oldest = created
        return counts, oldest


def score_parts(breakdown: dict[str, object]) -> dict[str, float]:
    """The breakdown's parts (uptime, latency, ...) as values in 0..1."""
    parts: dict[str, float] = {}
    for name, part in breakdown.items():
        if isinstance(part, dict) and isinstance(part.get("value_ppm"), int):
            parts[name] = part["value_ppm"] / 1_000_000
    return parts


def node_rewards(
    scores: list[tuple[str, str, int, dict[str, object]]], allocations: dict[str, int]
) -> dict[str, int]:
    """An operator's allocation split over its nodes by their scores (an operator with one
    node: all of it)."""
    totals: dict[str, int] = defaultdict(int)
    for _, operator, score, _ in scores:
        totals[operator] += score
    rewards: dict[str, int] = {}
    for node, operator, score, _ in scores:
        amount, total = allocations.get(operator, 0), totals[operator]
        rewards[node] = amount * score // total if total else 0
    return rewards


async def read_database_state(
    sessions: async_sessionmaker[AsyncSession], chain_id: int, statement_timeout_ms: int
) -> DatabaseState:
    """Every aggregate in one read-only transaction (one snapshot, so the numbers agree)."""
    state = DatabaseState()
    async with sessions() as session, session.begin():
        await session.execute(text("SET TRANSACTION READ ONLY"))
        # SET LOCAL takes no bind parameter; set_config(..., true) is the same, parameterised.
        await session.execute(
            select(func.set_config("statement_timeout", str(statement_timeout_ms), True))
        )
        queries = StateQueries(session, chain_id)
        state.now = await queries.now()
        state.cursor_block = await queries.cursor_block()
        state.payments, state.revenue_wei = await queries.payments()
        state.subscriptions_active = await queries.subscriptions_active()
        state.nodes = await queries.nodes_by_status()
        state.nodes_online = await queries.nodes_online()
        state.configs = await queries.configs_by_status()
        state.node_states = await queries.node_states()
        state.node_health = await queries.node_health()
        state.probe_rounds = await queries.probe_rounds()
        scores = await queries.latest_scores()
        state.node_scores = {node: ppm / 1_000_000 for node, _, ppm, _ in scores}
        state.node_score_parts = [
            (node, part, value)
            for node, _, _, breakdown in scores
            for part, value in score_parts(breakdown).items()
        ]
        state.node_rewards_wei = node_rewards(scores, await queries.latest_allocations())
        state.epochs, state.epoch_last_posted, state.rewards_posted_wei = await queries.epochs()
        state.publication_roots = await queries.publication_roots()
        state.outbox, state.outbox_oldest_unsent = await queries.outbox()
    return state
