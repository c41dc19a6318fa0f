from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class DeviceConfig(Base):
    """One device of a subscriber on one node: its WireGuard public key or OpenVPN certificate
    serial, and the addresses it holds in the node's pools. The database enforces that a live
    address or key is held once per node (partial unique indexes), so allocation is safe across
    replicas: a conflicting insert fails and the allocator retries with another address."""

    __tablename__ = "device_configs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    subscriber: Mapped[str] = mapped_column(String(42), index=True)
    protocol: Mapped[str] = mapped_column(String(16))  # wireguard | openvpn
    public_key: Mapped[str | None] = mapped_column(String(44))
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    cert_not_after: Mapped[datetime | None]
    certificate: Mapped[str | None] = mapped_column(Text)  # OpenVPN: the signed client cert (PEM)
    ipv4: Mapped[str] = mapped_column(INET)
    ipv6: Mapped[str] = mapped_column(INET)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    revoked_at: Mapped[datetime | None]
    # Why: `by_owner` (DELETE /v1/configs/{id}), `protocol_dropped` (the operator turned the
    # config's protocol off), `node_deleted`. NULL on a revoked row: revoked before this column
    # existed, or by the revision trigger when a node's deletion raced the issuance (0007).
    revoked_reason: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint(
            "revoked_reason IN ('by_owner', 'protocol_dropped', 'node_deleted')",
            name="revoked_reason",
        ),
        Index(
            "uq_device_configs_live_ipv4",
            "node_id",
            "ipv4",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index(
            "uq_device_configs_live_ipv6",
            "node_id",
            "ipv6",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index(
            "uq_device_configs_live_public_key",
            "node_id",
            "public_key",
            unique=True,
            postgresql_where=text("revoked_at IS NULL AND public_key IS NOT NULL"),
        ),
        # The device limit's count: a subscriber's live configs, read from its own rows whatever
        # the table's statistics say (migration 0010).
        Index(
            "ix_device_configs_live_subscriber",
            "subscriber",
            postgresql_where=text("revoked_at IS NULL"),
        ),
        # A CA never issues a serial twice (RFC 5280), live or revoked.
        Index(
            "uq_device_configs_cert_serial",
            "node_id",
            "cert_serial",
            unique=True,
            postgresql_where=text("cert_serial IS NOT NULL"),
        ),
    )
