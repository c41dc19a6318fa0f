"""Every query of the prober domain. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import ROWS_PER_FETCH, streamed
from control_plane.indexer.models import ChainNode
from control_plane.nodes.models import Node
from control_plane.prober.models import Prober, ProbeSample
from control_plane.prober.signing import Sample


@dataclass(frozen=True, slots=True)
class StoredSample:
    id: int
    round_at: datetime
    sample: Sample
    signature: str


def _to_datetime(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


def _stored(row: ProbeSample) -> StoredSample:
    return StoredSample(
        id=row.id,
        round_at=row.round_at,
        sample=Sample(
            prober=row.prober,
            node_id=row.node_id,
            round=int(row.round_at.timestamp()),
            attempts=row.attempts,
            rtt_us=tuple(row.rtt_us),
            error=row.error,
        ),
        signature=row.signature,
    )


async def add_prober_if_missing(session: AsyncSession, address: str, name: str) -> Prober:
    """The prober row of `address`, inserted with `name` if it is not there (a revoked prober
    stays revoked)."""
    await session.execute(
        insert(Prober)
        .values(address=address.lower(), name=name)
        .on_conflict_do_nothing(index_elements=[Prober.address])
    )
    result = await session.execute(
        select(Prober)
        .where(Prober.address == address.lower())
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def put_prober(session: AsyncSession, address: str, name: str) -> Prober:
    """Adds the prober, or renames and re-enables it."""
    result = await session.execute(
        insert(Prober)
        .values(address=address.lower(), name=name)
        .on_conflict_do_update(
            index_elements=[Prober.address], set_={"name": name, "revoked_at": None}
        )
        .returning(Prober)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def revoke_prober(session: AsyncSession, address: str) -> Prober | None:
    """Marks the prober revoked (kept, so its samples keep their foreign key); None if unknown."""
    return await session.scalar(
        update(Prober)
        .where(Prober.address == address.lower())
        .values(revoked_at=func.coalesce(Prober.revoked_at, func.now()))
        .returning(Prober)
        .execution_options(populate_existing=True)
    )


async def list_probers(session: AsyncSession) -> list[Prober]:
    rows = await session.scalars(select(Prober).order_by(Prober.created_at, Prober.address))
    return list(rows)


async def active_probers(session: AsyncSession, addresses: Iterable[str]) -> set[str]:
    """Those of `addresses` that are allow-listed and not revoked."""
    wanted = {a.lower() for a in addresses}
    if not wanted:
        return set()
    rows = await session.scalars(
        select(Prober.address).where(Prober.address.in_(wanted), Prober.revoked_at.is_(None))
    )
    return set(rows)


async def probe_targets(session: AsyncSession) -> list[tuple[str, str, str]]:
    """`(node_id, endpoint, agent)` of every live node that is Active on-chain, by node id (the
    agent as the indexer mirrors it: the key that must sign the node's health answers). Probed
    whether or not it sends heartbeats: a node that went silent must fail its probes."""
    rows = await session.execute(
        select(Node.id, Node.endpoint, ChainNode.agent)
        .join(ChainNode, ChainNode.node_id == Node.id)
        .where(Node.deleted_at.is_(None), ChainNode.active.is_(True))
        .order_by(Node.id)
    )
    return [(row.id, row.endpoint, row.agent.lower()) for row in rows]


async def known_nodes(session: AsyncSession, node_ids: Iterable[str]) -> set[str]:
    wanted = set(node_ids)
    if not wanted:
        return set()
    return set(await session.scalars(select(Node.id).where(Node.id.in_(wanted))))


async def stored_keys(
    session: AsyncSession, keys: Iterable[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """Those `(prober, node_id, round)` of `keys` that have a stored sample."""
    wanted = {(prober, node_id, _to_datetime(round_)) for prober, node_id, round_ in keys}
    if not wanted:
        return set()
    rows = await session.execute(
        select(ProbeSample.prober, ProbeSample.node_id, ProbeSample.round_at).where(
            tuple_(ProbeSample.prober, ProbeSample.node_id, ProbeSample.round_at).in_(wanted)
        )
    )
    return {(row.prober, row.node_id, int(row.round_at.timestamp())) for row in rows}


async def insert_samples(session: AsyncSession, samples: Sequence[tuple[Sample, str]]) -> int:
    """Stores signed samples; a sample already stored (same prober, node and round) is skipped.
    Returns how many were new."""
    if not samples:
        return 0
    values: list[dict[str, Any]] = [
        {
            "prober": sample.prober.lower(),
            "node_id": sample.node_id.lower(),
            "round_at": _to_datetime(sample.round),
            "attempts": sample.attempts,
            "rtt_us": list(sample.rtt_us),
            "error": sample.error,
            "signature": signature,
        }
        for sample, signature in samples
    ]
    # A bulk insert (sent as multi-row statements of a bounded size): one statement of every
    # sample stopped at PostgreSQL's 32,767 parameters, a round of 4,682 nodes.
    inserted = await session.scalars(
        insert(ProbeSample)
        .on_conflict_do_nothing(constraint="uq_probe_samples_prober_node_id_round_at")
        .returning(ProbeSample.id),
        values,
    )
    return len(list(inserted))


async def samples_between(
    session: AsyncSession, start: datetime, end: datetime, *, rows_per_fetch: int = ROWS_PER_FETCH
) -> list[StoredSample]:
    """Samples of rounds in `[start, end)` from probers that are not revoked, in no order; read
    in fetches of `rows_per_fetch` (an epoch has millions)."""
    # Plain column rows, unpacked, cost a fraction of ORM entities (no identity map, no
    # instance state).
    statement = (
        select(
            ProbeSample.id,
            ProbeSample.round_at,
            ProbeSample.prober,
            ProbeSample.node_id,
            ProbeSample.attempts,
            ProbeSample.rtt_us,
            ProbeSample.error,
            ProbeSample.signature,
        )
        .join(Prober, Prober.address == ProbeSample.prober)
        .where(
            ProbeSample.round_at >= start,
            ProbeSample.round_at < end,
            Prober.revoked_at.is_(None),
        )
        # No ORDER BY: scoring groups samples per node and prober itself, and sorting an
        # epoch's millions of rows spilled to disk (and would hold the first fetch until done).
    )
    stored: list[StoredSample] = []
    async for rows in streamed(session, statement, rows_per_fetch):
        stored.extend(
            StoredSample(
                row_id,
                round_at,
                Sample(prober, node_id, int(round_at.timestamp()), attempts, tuple(rtt), error),
                signature,
            )
            for row_id, round_at, prober, node_id, attempts, rtt, error, signature in rows
        )
    return stored


async def node_samples(
    session: AsyncSession,
    node_id: str,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[StoredSample]:
    """One node's samples, newest round first, before the keyset `(round_at, id)`."""
    statement = select(ProbeSample).where(ProbeSample.node_id == node_id)
    if before is not None:
        statement = statement.where(tuple_(ProbeSample.round_at, ProbeSample.id) < tuple_(*before))
    rows = await session.scalars(
        statement.order_by(ProbeSample.round_at.desc(), ProbeSample.id.desc()).limit(limit)
    )
    return [_stored(row) for row in rows]


async def latest_trusted_samples(
    session: AsyncSession, node_id: str, limit: int
) -> list[StoredSample]:
    """The node's `limit` newest samples from probers that are not revoked (what scoring
    trusts), newest round first."""
    rows = await session.scalars(
        select(ProbeSample)
        .join(Prober, Prober.address == ProbeSample.prober)
        .where(ProbeSample.node_id == node_id, Prober.revoked_at.is_(None))
        .order_by(ProbeSample.round_at.desc(), ProbeSample.id.desc())
        .limit(limit)
    )
    return [_stored(row) for row in rows]
