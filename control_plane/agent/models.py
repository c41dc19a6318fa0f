from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class Heartbeat(Base):
    """A node agent's periodic report of itself (append-only; scoring reads it)."""

    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    agent_version: Mapped[str] = mapped_column(String(64))
    applied_revision: Mapped[int] = mapped_column(BigInteger)
    active_peers: Mapped[int] = mapped_column(Integer)
    rx_bytes_total: Mapped[int] = mapped_column(BigInteger)
    tx_bytes_total: Mapped[int] = mapped_column(BigInteger)


class PeerMetric(Base):
    """Per-peer handshake time and byte deltas reported by a node agent (append-only)."""

    __tablename__ = "peer_metrics"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    last_handshake_at: Mapped[datetime | None]
    rx_bytes: Mapped[int] = mapped_column(BigInteger)
    tx_bytes: Mapped[int] = mapped_column(BigInteger)
