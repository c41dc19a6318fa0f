from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class Prober(Base):
    """A key allowed to submit probe samples (the allow-list admins manage). The control plane's
    own prober adds itself. A revoked prober's samples, old and new, are no longer trusted."""

    __tablename__ = "probers"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)  # lower-case 0x-hex
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]


class ProbeSample(Base):
    """One prober's probe of one node in one round: `attempts` HTTP requests to the node's
    health endpoint, the round trip of each answered one (`rtt_us`), and the last failure.
    Signed by the prober (EIP-191 over `canonical_sample`); append-only."""

    __tablename__ = "probe_samples"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    prober: Mapped[str] = mapped_column(ForeignKey("probers.address"))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    round_at: Mapped[datetime]  # the round's start, whole seconds (part of the signed payload)
    attempts: Mapped[int] = mapped_column(SmallInteger)
    rtt_us: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    error: Mapped[str | None] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(132))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # One sample per prober, node and round: a replayed sample is a no-op.
        UniqueConstraint("prober", "node_id", "round_at"),
        # Scoring reads one epoch of every node; the node page reads one node, newest first.
        Index("ix_probe_samples_node_id_round_at", "node_id", "round_at"),
        Index("ix_probe_samples_round_at", "round_at"),
        CheckConstraint("attempts BETWEEN 1 AND 10", name="attempts"),
        CheckConstraint("cardinality(rtt_us) <= attempts", name="answers_within_attempts"),
    )
