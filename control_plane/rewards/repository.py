"""Every query of scoring and the scores API. Never commits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ScalarSelect, and_, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agent.models import PeerMetric
from control_plane.db import ROWS_PER_FETCH, streamed
from control_plane.device_configs import DeviceConfig
from control_plane.indexer.models import ChainNode, RewardEpoch
from control_plane.nodes.models import Node
from control_plane.nodes.repository import NodeRepository
from control_plane.rewards.formula.epoch import EpochResult, PeerReport
from control_plane.rewards.score_models import NodeScoreRecord, OperatorAllocation, ScoredEpoch
from control_plane.subscriptions.models import Subscriber

# A peer's counters before the epoch are looked up this far back (older ones: counted from 0).
BASELINE_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class EpochNode:
    node_id: str
    operator: str  # lower-case; the on-chain operator when the indexer knows the node
    active: bool  # Active in NodeRegistry (as indexed)
    agent: str | None = None  # lower-case; the on-chain agent key (None: not indexed)
    stake: int = 0  # wei, as indexed (0: not indexed)


async def epoch_nodes(
    session: AsyncSession, start: datetime, end: datetime, *, rows_per_fetch: int = ROWS_PER_FETCH
) -> list[EpochNode]:
    """Nodes registered here at some point of `[start, end)`, with their on-chain state, in
    fetches of `rows_per_fetch`."""
    statement = (
        select(
            Node.id,
            Node.operator,
            ChainNode.operator,
            ChainNode.active,
            ChainNode.agent,
            ChainNode.stake,
        )
        .outerjoin(ChainNode, ChainNode.node_id == Node.id)
        .where(Node.created_at < end, or_(Node.deleted_at.is_(None), Node.deleted_at >= start))
        .order_by(Node.id)
    )
    nodes: list[EpochNode] = []
    async for rows in streamed(session, statement, rows_per_fetch):
        nodes.extend(
            EpochNode(
                node_id=node_id,
                operator=(chain_operator or operator).lower(),
                active=bool(active),
                agent=None if agent is None else agent.lower(),
                stake=int(stake or 0),
            )
            for node_id, operator, chain_operator, active, agent, stake in rows
        )
    return nodes


def _paying_wallet() -> ScalarSelect[str]:
    """The subscriber (lower-case) of the live config of the node that the reported peer was at
    the time of the report, if that subscriber had paid then; NULL otherwise."""
    return (
        select(func.lower(DeviceConfig.subscriber))
        .join(Subscriber, Subscriber.address == func.lower(DeviceConfig.subscriber))
        .where(
            DeviceConfig.node_id == PeerMetric.node_id,
            or_(
                and_(
                    PeerMetric.public_key.is_not(None),
                    DeviceConfig.public_key == PeerMetric.public_key,
                ),
                and_(
                    PeerMetric.cert_serial.is_not(None),
                    DeviceConfig.cert_serial == PeerMetric.cert_serial,
                ),
            ),
            DeviceConfig.created_at <= PeerMetric.reported_at,
            or_(
                DeviceConfig.revoked_at.is_(None),
                DeviceConfig.revoked_at > PeerMetric.reported_at,
            ),
            Subscriber.expires_at > PeerMetric.reported_at,
        )
        .limit(1)
        .scalar_subquery()
    )


async def peer_reports(
    session: AsyncSession, start: datetime, end: datetime, *, rows_per_fetch: int = ROWS_PER_FETCH
) -> list[PeerReport]:
    """Every per-peer report in `[start, end)`, plus each peer's last report in the day before
    `start` (its counters' baseline), ordered by node, peer and time; read in fetches of
    `rows_per_fetch`."""
    peer = func.coalesce("wg:" + PeerMetric.public_key, "ovpn:" + PeerMetric.cert_serial).label(
        "peer"
    )
    in_window = select(
        PeerMetric.node_id,
        peer,
        PeerMetric.reported_at,
        PeerMetric.id,
        PeerMetric.last_handshake_at,
        PeerMetric.rx_bytes,
        PeerMetric.tx_bytes,
        _paying_wallet().label("wallet"),
    ).where(PeerMetric.reported_at >= start, PeerMetric.reported_at < end)
    newest_first = (
        func.row_number()
        .over(
            partition_by=(PeerMetric.node_id, peer),
            order_by=(PeerMetric.reported_at.desc(), PeerMetric.id.desc()),
        )
        .label("newest_first")
    )
    before = (
        select(
            PeerMetric.node_id,
            peer,
            PeerMetric.reported_at,
            PeerMetric.id,
            PeerMetric.rx_bytes,
            PeerMetric.tx_bytes,
            newest_first,
        )
        .where(PeerMetric.reported_at >= start - BASELINE_LOOKBACK, PeerMetric.reported_at < start)
        .subquery()
    )
    baseline = select(
        before.c.node_id,
        before.c.peer,
        before.c.reported_at,
        before.c.id,
        before.c.rx_bytes,
        before.c.tx_bytes,
    ).where(before.c.newest_first == 1)
    reports: list[tuple[tuple[str, str, datetime, int], PeerReport]] = []
    async for baseline_rows in streamed(session, baseline, rows_per_fetch):
        reports.extend(
            (
                (base.node_id, base.peer, base.reported_at, base.id),
                PeerReport(
                    base.node_id,
                    base.peer,
                    base.reported_at,
                    None,
                    base.rx_bytes,
                    base.tx_bytes,
                    wallet=None,
                    baseline=True,
                ),
            )
            for base in baseline_rows
        )
    async for rows in streamed(session, in_window, rows_per_fetch):
        reports.extend(
            (
                (row.node_id, row.peer, row.reported_at, row.id),
                PeerReport(
                    row.node_id,
                    row.peer,
                    row.reported_at,
                    row.last_handshake_at,
                    row.rx_bytes,
                    row.tx_bytes,
                    wallet=row.wallet,
                    baseline=False,
                ),
            )
            for row in rows
        )
    reports.sort(key=lambda item: item[0])
    return [report for _, report in reports]


async def previous_smoothed(session: AsyncSession, chain_id: int, epoch: int) -> dict[str, int]:
    """Each node's smoothed score from its latest scored epoch before `epoch`."""
    latest = (
        select(NodeScoreRecord.node_id, func.max(NodeScoreRecord.epoch).label("epoch"))
        .where(NodeScoreRecord.chain_id == chain_id, NodeScoreRecord.epoch < epoch)
        .group_by(NodeScoreRecord.node_id)
        .subquery()
    )
    rows = await session.execute(
        select(NodeScoreRecord.node_id, NodeScoreRecord.smoothed_ppm).join(
            latest,
            and_(
                NodeScoreRecord.chain_id == chain_id,
                NodeScoreRecord.node_id == latest.c.node_id,
                NodeScoreRecord.epoch == latest.c.epoch,
            ),
        )
    )
    return {node_id: int(smoothed) for node_id, smoothed in rows}


async def save_epoch_scores(session: AsyncSession, result: EpochResult) -> None:
    """Records a built epoch: its summary and published data, every node's score (also as the
    node's latest score on its row, for the node list) and every operator's allocation.
    Replaces what an earlier build of the same epoch recorded (the caller records the build it
    posts, in the same transaction)."""
    await session.execute(
        delete(ScoredEpoch).where(
            ScoredEpoch.chain_id == result.chain_id, ScoredEpoch.epoch == result.epoch
        )
    )
    await session.execute(
        insert(ScoredEpoch).values(
            chain_id=result.chain_id,
            epoch=result.epoch,
            starts_at=result.start,
            ends_at=result.end,
            formula_version=result.formula_version,
            requested_budget=result.requested_budget,
            budget=result.budget,
            allocated=sum(result.allocations.values()),
            total_cumulative=result.total_cumulative,
            root=result.root,
            data_hash=result.data_hash,
            data=result.data,
        )
    )
    if result.scores:
        await session.execute(
            insert(NodeScoreRecord),
            [
                {
                    "chain_id": result.chain_id,
                    "epoch": result.epoch,
                    "node_id": s.node_id,
                    "operator": s.operator.lower(),
                    "active": s.active,
                    "raw_ppm": s.raw_ppm,
                    "smoothed_ppm": s.smoothed_ppm,
                    "score_ppm": s.score_ppm,
                    "breakdown": s.breakdown(),
                    "reasons": list(s.reasons),
                }
                for s in result.scores
            ],
        )
        # The public node list reads each node's latest score from its own row.
        await NodeRepository(session).record_latest_scores(
            result.epoch, [(s.node_id, s.score_ppm) for s in result.scores]
        )
    operators = sorted(set(result.allocations) | set(result.cumulative))
    if operators:
        await session.execute(
            insert(OperatorAllocation),
            [
                {
                    "chain_id": result.chain_id,
                    "epoch": result.epoch,
                    "operator": operator,
                    "amount": result.allocations.get(operator, 0),
                    "cumulative": result.cumulative.get(operator, 0),
                }
                for operator in operators
            ],
        )


async def scored_epoch(session: AsyncSession, chain_id: int, epoch: int) -> ScoredEpoch | None:
    return await session.scalar(
        select(ScoredEpoch).where(ScoredEpoch.chain_id == chain_id, ScoredEpoch.epoch == epoch)
    )


async def last_scored_end(
    session: AsyncSession, chain_id: int, before_epoch: int
) -> datetime | None:
    """Where the newest scored epoch before `before_epoch` ended: the next one starts there, so
    epochs tile time with no gap and no overlap."""
    ends: datetime | None = await session.scalar(
        select(func.max(ScoredEpoch.ends_at)).where(
            ScoredEpoch.chain_id == chain_id, ScoredEpoch.epoch < before_epoch
        )
    )
    return ends


async def epoch_data(session: AsyncSession, chain_id: int, epoch: int) -> bytes | None:
    """The exact published bytes of an epoch (what `GET /v1/epochs/{n}/data` serves)."""
    data = await session.scalar(
        select(ScoredEpoch.data).where(ScoredEpoch.chain_id == chain_id, ScoredEpoch.epoch == epoch)
    )
    return None if data is None else bytes(data)


async def onchain_epoch(session: AsyncSession, chain_id: int, epoch: int) -> RewardEpoch | None:
    return await session.scalar(
        select(RewardEpoch).where(RewardEpoch.chain_id == chain_id, RewardEpoch.epoch == epoch)
    )


async def allocations(session: AsyncSession, chain_id: int, epoch: int) -> list[OperatorAllocation]:
    rows = await session.scalars(
        select(OperatorAllocation)
        .where(OperatorAllocation.chain_id == chain_id, OperatorAllocation.epoch == epoch)
        .order_by(OperatorAllocation.operator)
    )
    return list(rows)


async def count_scores(session: AsyncSession, chain_id: int, epoch: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(NodeScoreRecord)
        .where(NodeScoreRecord.chain_id == chain_id, NodeScoreRecord.epoch == epoch)
    )
    return int(count or 0)


async def cumulative_of(session: AsyncSession, chain_id: int, epoch: int) -> dict[str, int]:
    """The cumulative amounts (leaves) an epoch's scoring produced; empty if not scored."""
    return {
        row.operator: int(row.cumulative)
        for row in await allocations(session, chain_id, epoch)
        if int(row.cumulative) > 0
    }


async def latest_accepted_cumulative(
    session: AsyncSession, chain_id: int, before_epoch: int
) -> dict[str, int]:
    """The leaves of the newest epoch before `before_epoch` that the chain accepted (a revoked
    epoch paid nothing, so the next one builds on the last accepted); empty if none."""
    accepted = await session.scalar(
        select(func.max(RewardEpoch.epoch)).where(
            RewardEpoch.chain_id == chain_id,
            RewardEpoch.epoch < before_epoch,
            RewardEpoch.status == "accepted",
        )
    )
    if accepted is None:
        return {}
    return await cumulative_of(session, chain_id, int(accepted))


async def node_exists(session: AsyncSession, node_id: str) -> bool:
    return (await session.scalar(select(Node.id).where(Node.id == node_id))) is not None


@dataclass(frozen=True, slots=True)
class NodeScoreView:
    record: NodeScoreRecord
    starts_at: datetime
    ends_at: datetime
    formula_version: str


async def node_scores(
    session: AsyncSession, chain_id: int, node_id: str, before_epoch: int | None, limit: int
) -> list[NodeScoreView]:
    """A node's scores, newest epoch first, before `before_epoch`."""
    statement = (
        select(
            NodeScoreRecord,
            ScoredEpoch.starts_at,
            ScoredEpoch.ends_at,
            ScoredEpoch.formula_version,
        )
        .join(
            ScoredEpoch,
            and_(
                ScoredEpoch.chain_id == NodeScoreRecord.chain_id,
                ScoredEpoch.epoch == NodeScoreRecord.epoch,
            ),
        )
        .where(NodeScoreRecord.chain_id == chain_id, NodeScoreRecord.node_id == node_id)
    )
    if before_epoch is not None:
        statement = statement.where(NodeScoreRecord.epoch < before_epoch)
    rows = await session.execute(statement.order_by(NodeScoreRecord.epoch.desc()).limit(limit))
    return [NodeScoreView(row[0], row[1], row[2], row[3]) for row in rows]


async def latest_scores(
    session: AsyncSession, chain_id: int, node_ids: Iterable[str]
) -> dict[str, int]:
    """Each node's score (ppm) in its newest scored epoch (for node listings)."""
    wanted = list(node_ids)
    if not wanted:
        return {}
    latest = (
        select(NodeScoreRecord.node_id, func.max(NodeScoreRecord.epoch).label("epoch"))
        .where(NodeScoreRecord.chain_id == chain_id, NodeScoreRecord.node_id.in_(wanted))
        .group_by(NodeScoreRecord.node_id)
        .subquery()
    )
    rows = await session.execute(
        select(NodeScoreRecord.node_id, NodeScoreRecord.score_ppm).join(
            latest,
            and_(
                NodeScoreRecord.chain_id == chain_id,
                NodeScoreRecord.node_id == latest.c.node_id,
                NodeScoreRecord.epoch == latest.c.epoch,
            ),
        )
    )
    return {node_id: int(score) for node_id, score in rows}
