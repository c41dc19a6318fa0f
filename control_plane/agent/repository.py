"""Every query of the agent feed: node revisions, the desired peer set, heartbeats, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agent.models import Heartbeat, PeerMetric
from control_plane.device_configs import DeviceConfig
from control_plane.nodes.models import Node
from control_plane.subscriptions.models import Subscriber


@dataclass(frozen=True, slots=True)
class NodeRevision:
    revision: int
    deleted: bool


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
        await session.execute(select(Node.revision, Node.deleted_at).where(Node.id == node_id))
    ).one_or_none()
    if row is None:
        return None
    return NodeRevision(revision=int(row.revision), deleted=row.deleted_at is not None)


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
