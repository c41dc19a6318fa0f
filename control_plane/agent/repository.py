"""Every query of the agent feed: node revisions, the desired peer set, heartbeats, metrics."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    cast,
    column,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agent.models import Heartbeat, PeerMetric
from control_plane.device_configs import DeviceConfig
from control_plane.nodes.models import Node
from control_plane.subscriptions.models import Subscriber


@dataclass(frozen=True, slots=True)
class NodeRevision:
    revision: int
    deleted: bool
    history: uuid.UUID  # the peer log's history (revisions.py)


@dataclass(frozen=True, slots=True)
class TouchedConfig:
    """A config the peer log names since the diff's base: its peer (None: not in the set now,
    `identity` says what to remove; both None: a config that never had a peer identity)."""

    peer: PeerRow | None
    identity: tuple[str, str] | None  # (protocol, public key or certificate serial)


@dataclass(frozen=True, slots=True)
class PeerDiff:
    """The node at `revision` and, when a diff since the asked revision is exact (same history,
    log not compacted past it, node live, not ahead), the configs changed since; else None."""

    revision: int
    history: uuid.UUID
    touched: list[TouchedConfig] | None


@dataclass(frozen=True, slots=True)
class PeerRow:
    protocol: str
    public_key: str | None
    cert_serial: str | None
    ipv4: str
    ipv6: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class MetricRow:
    public_key: str | None
    cert_serial: str | None
    last_handshake_at: datetime | None
    rx_bytes: int
    tx_bytes: int


async def all_revisions(session: AsyncSession) -> dict[str, int]:
    """Every node's revision (the feed's map, loaded at start and after a reconnect)."""
    rows = await session.execute(select(Node.id, Node.revision))
    return {node_id: int(revision) for node_id, revision in rows}


async def node_revision(session: AsyncSession, node_id: str) -> NodeRevision | None:
    row = (
        await session.execute(
            select(Node.revision, Node.deleted_at, Node.peer_history).where(Node.id == node_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return NodeRevision(
        revision=int(row.revision), deleted=row.deleted_at is not None, history=row.peer_history
    )


async def desired_peers(session: AsyncSession, node_id: str, now: datetime) -> list[PeerRow]:
    """The node's live configs whose subscriber's expiry is still ahead, oldest first."""
    statement = (
        select(
            DeviceConfig.protocol,
            DeviceConfig.public_key,
            DeviceConfig.cert_serial,
            DeviceConfig.ipv4,
            DeviceConfig.ipv6,
            Subscriber.expires_at,
        )
        .join(Subscriber, Subscriber.address == func.lower(DeviceConfig.subscriber))
        .where(
            DeviceConfig.node_id == node_id,
            DeviceConfig.revoked_at.is_(None),
            Subscriber.expires_at > now,
            or_(
                (DeviceConfig.protocol == "wireguard") & DeviceConfig.public_key.is_not(None),
                (DeviceConfig.protocol == "openvpn") & DeviceConfig.cert_serial.is_not(None),
            ),
        )
        .order_by(DeviceConfig.created_at, DeviceConfig.id)
    )
    rows = await session.execute(statement)
    return [
        PeerRow(
            protocol=row.protocol,
            public_key=row.public_key,
            cert_serial=row.cert_serial,
            ipv4=str(row.ipv4),
            ipv6=str(row.ipv6),
            expires_at=row.expires_at,
        )
        for row in rows
    ]


# One statement, so one snapshot: the node's revision, its log's history and floor, and the
# current state of every config the log names in (since, revision]. The configs are read as of
# that revision exactly (every change to the set commits with its bump), so the diff is exact.
# The predicate of "in the set" is `desired_peers`'s.
_PEER_DIFF = text(
    """
    WITH node AS (
        SELECT revision, peer_history, peer_log_from, deleted_at FROM nodes WHERE id = :node_id
    ), touched AS (
        SELECT DISTINCT c.config_id FROM peer_changes c, node
        WHERE c.node_id = :node_id AND c.revision > :since AND c.revision <= node.revision
          AND node.peer_history = :history AND node.peer_log_from <= :since
          AND node.deleted_at IS NULL
    )
    SELECT node.revision, node.peer_history, node.peer_log_from,
           node.deleted_at IS NOT NULL AS deleted, t.config_id, t.protocol, t.public_key,
           t.cert_serial, t.ipv4, t.ipv6, t.expires_at, t.live
    FROM node LEFT JOIN (
        SELECT touched.config_id, d.protocol, d.public_key, d.cert_serial,
               host(d.ipv4) AS ipv4, host(d.ipv6) AS ipv6, s.expires_at,
               d.revoked_at IS NULL AND s.expires_at IS NOT NULL AND s.expires_at > :now AS live
        FROM touched
        JOIN device_configs d ON d.id = touched.config_id
        LEFT JOIN subscribers s ON s.address = lower(d.subscriber)
    ) AS t ON true
    """
)


async def peer_diff(
    session: AsyncSession, node_id: str, since: int, history: uuid.UUID, now: datetime
) -> PeerDiff | None:
    """The node's changes since `since` in `history` (see PeerDiff); None if no such node."""
    rows = (
        await session.execute(
            _PEER_DIFF, {"node_id": node_id, "since": since, "history": history, "now": now}
        )
    ).all()
    if not rows:
        return None
    head = rows[0]
    revision, current = int(head.revision), head.peer_history
    exact = current == history and int(head.peer_log_from) <= since <= revision and not head.deleted
    if not exact:
        return PeerDiff(revision, current, None)
    touched = [_touched(row) for row in rows if row.config_id is not None]
    return PeerDiff(revision, current, touched)


def _touched(row: Row[Any]) -> TouchedConfig:
    identity = (
        row.public_key
        if row.protocol == "wireguard"
        else row.cert_serial
        if row.protocol == "openvpn"
        else None
    )
    if identity is None:
        return TouchedConfig(None, None)
    peer = None
    if row.live:
        peer = PeerRow(
            protocol=row.protocol,
            public_key=row.public_key,
            cert_serial=row.cert_serial,
            ipv4=row.ipv4,
            ipv6=row.ipv6,
            expires_at=row.expires_at,
        )
    return TouchedConfig(peer, (row.protocol, identity))


async def record_heartbeat_time(session: AsyncSession, node_id: str) -> int | None:
    """Sets the node's `last_heartbeat_at` to now; its current revision, None if no such live
    node. `updated_at` keeps meaning "the operator changed the node", not "it reported"."""
    revision = await session.scalar(
        update(Node)
        .where(Node.id == node_id, Node.deleted_at.is_(None))
        .values(last_heartbeat_at=func.now(), updated_at=Node.updated_at)
        .returning(Node.revision)
    )
    return None if revision is None else int(revision)


async def add_heartbeat(session: AsyncSession, heartbeat: Heartbeat) -> None:
    session.add(heartbeat)
    await session.flush()


async def live_node_exists(session: AsyncSession, node_id: str) -> bool:
    found = await session.scalar(
        select(literal(True)).where(Node.id == node_id, Node.deleted_at.is_(None))
    )
    return found is not None


async def add_peer_metrics(session: AsyncSession, node_id: str, rows: Sequence[MetricRow]) -> int:
    """Stores the rows whose peer is (or was) a config on this node, in one INSERT ... SELECT
    over `unnest` of one array per column (a VALUES list would need six bind parameters per row,
    past asyncpg's 32,767 for a large report). Returns how many rows were stored."""
    reported = (
        func.unnest(
            cast([r.public_key for r in rows], ARRAY(String)),
            cast([r.cert_serial for r in rows], ARRAY(String)),
            cast([r.last_handshake_at for r in rows], ARRAY(DateTime(timezone=True))),
            cast([r.rx_bytes for r in rows], ARRAY(BigInteger)),
            cast([r.tx_bytes for r in rows], ARRAY(BigInteger)),
        )
        .table_valued(
            column("public_key", String),
            column("cert_serial", String),
            column("last_handshake_at", DateTime(timezone=True)),
            column("rx_bytes", BigInteger),
            column("tx_bytes", BigInteger),
        )
        .render_derived(name="reported", with_types=False)
    )
    node_keys = select(DeviceConfig.public_key).where(
        DeviceConfig.node_id == node_id, DeviceConfig.public_key.is_not(None)
    )
    node_serials = select(DeviceConfig.cert_serial).where(
        DeviceConfig.node_id == node_id, DeviceConfig.cert_serial.is_not(None)
    )
    known = select(
        literal(node_id, String),
        reported.c.public_key,
        reported.c.cert_serial,
        reported.c.last_handshake_at,
        reported.c.rx_bytes,
        reported.c.tx_bytes,
    ).where(
        or_(
            reported.c.public_key.in_(node_keys),
            reported.c.cert_serial.in_(node_serials),
        )
    )
    result = await session.execute(
        insert(PeerMetric).from_select(
            ["node_id", "public_key", "cert_serial", "last_handshake_at", "rx_bytes", "tx_bytes"],
            known,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_node_pools(session: AsyncSession, node_id: str) -> tuple[str, str] | None:
    """The IPv4 and IPv6 device pools of a live node (None: no such live node)."""
    row = (
        await session.execute(
            select(Node.ipv4_pool, Node.ipv6_pool).where(
                Node.id == node_id, Node.deleted_at.is_(None)
            )
        )
    ).first()
    return None if row is None else (str(row[0]), str(row[1]))
