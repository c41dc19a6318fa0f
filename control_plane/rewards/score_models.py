"""What the scorer computed for each epoch: the epoch's summary and published data, each node's
score with its breakdown and reasons, and each operator's allocation. Written only by
`rewards.repository.save_epoch_scores` (the epoch job, in the transaction that records the
epoch); the API reads them. The chain's view of the epoch is `RewardEpoch` (the indexer's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class ScoredEpoch(Base):
    """One scored epoch: its window, budget, totals, root and the exact bytes of its published
    data (their keccak256 is `data_hash`, the hash proposed on-chain with the root)."""

    __tablename__ = "scored_epochs"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    formula_version: Mapped[str] = mapped_column(String(32))
    requested_budget: Mapped[int] = mapped_column(Numeric(78, 0))
    budget: Mapped[int] = mapped_column(Numeric(78, 0))  # capped by the pool's headroom
    allocated: Mapped[int] = mapped_column(Numeric(78, 0))
    total_cumulative: Mapped[int] = mapped_column(Numeric(78, 0))
    root: Mapped[str] = mapped_column(String(66))
    data_hash: Mapped[str] = mapped_column(String(66))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("allocated <= budget", name="within_budget"),
        CheckConstraint("ends_at > starts_at", name="window"),
    )


class NodeScoreRecord(Base):
    """A node's score for one epoch (ppm: 1_000_000 = 1.0) with its breakdown and reasons."""

    __tablename__ = "node_scores"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    operator: Mapped[str] = mapped_column(String(42))
    active: Mapped[bool]
    raw_ppm: Mapped[int] = mapped_column(Integer)
    smoothed_ppm: Mapped[int] = mapped_column(Integer)
    score_ppm: Mapped[int] = mapped_column(Integer)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSONB)
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text))

    __table_args__ = (
        ForeignKeyConstraint(
            ["chain_id", "epoch"],
            ["scored_epochs.chain_id", "scored_epochs.epoch"],
            ondelete="CASCADE",
        ),
        # A node's history, newest first (its scores page, and the previous smoothed score).
        Index("ix_node_scores_history", "chain_id", "node_id", epoch.desc()),
        CheckConstraint("raw_ppm BETWEEN 0 AND 1000000", name="raw_range"),
        CheckConstraint("smoothed_ppm BETWEEN 0 AND 1000000", name="smoothed_range"),
        CheckConstraint("score_ppm BETWEEN 0 AND 1000000", name="score_range"),
    )


class OperatorAllocation(Base):
    """An operator's part of one epoch's budget and its cumulative amount after it (its leaf)."""

    __tablename__ = "operator_allocations"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    operator: Mapped[str] = mapped_column(String(42), primary_key=True)
    amount: Mapped[int] = mapped_column(Numeric(78, 0))
    cumulative: Mapped[int] = mapped_column(Numeric(78, 0))

    __table_args__ = (
        ForeignKeyConstraint(
            ["chain_id", "epoch"],
            ["scored_epochs.chain_id", "scored_epochs.epoch"],
            ondelete="CASCADE",
        ),
        CheckConstraint("amount >= 0 AND cumulative >= amount", name="amounts"),
    )
