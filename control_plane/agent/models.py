from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class Heartbeat(Base):
    """A node agent's periodic report of itself (append-only; scoring reads it)."""

    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    agent_version: Mapped[str] = mapped_column(String(64))
    applied_revision: Mapped[int] = mapped_column(BigInteger)
    active_peers: Mapped[int] = mapped_column(Integer)
    rx_bytes_total: Mapped[int] = mapped_column(BigInteger)
    tx_bytes_total: Mapped[int] = mapped_column(BigInteger)

    # Scoring reads one node's reports over an epoch; the index also serves the foreign key.
    __table_args__ = (Index("ix_heartbeats_node_id_received_at", "node_id", "received_at"),)


class PeerMetric(Base):
    """Per-peer handshake time and byte counters reported by a node agent (append-only).

    A peer is a WireGuard `public_key` or an OpenVPN `cert_serial` (exactly one is set). The
    counters are cumulative as the interface reports them (they restart when a peer is re-added);
    scoring takes differences between reports, so a lost report loses no traffic."""

    __tablename__ = "peer_metrics"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    public_key: Mapped[str | None] = mapped_column(String(64))
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    last_handshake_at: Mapped[datetime | None]
    rx_bytes: Mapped[int] = mapped_column(BigInteger)
    tx_bytes: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_peer_metrics_node_id_reported_at", "node_id", "reported_at"),
        CheckConstraint("num_nonnulls(public_key, cert_serial) = 1", name="one_peer_identity"),
        CheckConstraint("rx_bytes >= 0 AND tx_bytes >= 0", name="counters_not_negative"),
    )
