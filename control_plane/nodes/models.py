from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, LargeBinary, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, CIDR
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class Node(Base):
    """A VPN node as its operator registered it with the control plane. On-chain truth (active,
    operator, agent key) lives in `ChainNode`; this row holds what the chain does not."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(66), primary_key=True)  # bytes32 as 0x-hex, lower
    operator: Mapped[str] = mapped_column(String(42), index=True)
    protocols: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    endpoint: Mapped[str] = mapped_column(String(262))  # host:port; OpenVPN uses its host
    # OpenVPN's UDP port on the endpoint's host (a node serving both protocols needs two ports).
    openvpn_port: Mapped[int | None] = mapped_column(Integer)
    country: Mapped[str] = mapped_column(String(2), index=True)
    wireguard_public_key: Mapped[str | None] = mapped_column(String(44))
    ipv4_pool: Mapped[str] = mapped_column(CIDR)
    ipv6_pool: Mapped[str] = mapped_column(CIDR)
    # OpenVPN: the node's CA and server credentials, generated here; keys encrypted at rest.
    openvpn_ca_cert: Mapped[str | None] = mapped_column(Text)
    openvpn_ca_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    openvpn_server_cert: Mapped[str | None] = mapped_column(Text)
    openvpn_server_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    openvpn_tls_crypt_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Monotonic revision of the node's desired peer set; bumped by every change to it.
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    # The revision log's history id and floor (revisions.py): a peer diff since a revision is
    # served only within the same history and from `peer_log_from` on.
    peer_history: Mapped[uuid.UUID] = mapped_column(server_default=text("gen_random_uuid()"))
    peer_log_from: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    deleted_at: Mapped[datetime | None]
    # Out of service: a stored value failed its grammar (see tunnel/grammar.py). The node is
    # hidden from the list and from GET, and no config is issued or rendered for it, until its
    # operator PATCHes valid values (which clears both columns).
    suspended_at: Mapped[datetime | None]
    suspended_reason: Mapped[str | None] = mapped_column(Text)
    # The node's score (ppm) in its newest scored epoch, and that epoch: written by the scorer
    # (rewards.repository.save_epoch_scores) so the public list can filter and sort by it.
    score_ppm: Mapped[int | None] = mapped_column(Integer)
    score_epoch: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("score_ppm IS NULL OR score_ppm BETWEEN 0 AND 1000000", name="score_range"),
    )
