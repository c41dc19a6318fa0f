from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class Payment(Base):
    """A `Subscribed` event as indexed: append-only, keyed by where it sits on the chain. A reorg
    that drops the event deletes the row (it never happened); nothing else changes it."""

    __tablename__ = "payments"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tx_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    block_hash: Mapped[str] = mapped_column(String(66))
    subscriber: Mapped[str] = mapped_column(String(42), index=True)
    payer: Mapped[str] = mapped_column(String(42))
    months: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Numeric(78, 0))
    expires_at: Mapped[datetime]
    indexed_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # A subscriber's history, newest first (GET /v1/me/subscription), and its latest payment.
        Index(
            "ix_payments_history",
            "chain_id",
            "subscriber",
            block_number.desc(),
            log_index.desc(),
        ),
    )


class Subscriber(Base):
    """A subscriber's expiry as last learned from the chain (events or a direct read). The
    expiry job compares it with the clock to drop lapsed peers from nodes' desired sets.

    `lapse_processed_until` is the expiry whose lapse the expiry job has already announced to the
    nodes (by bumping their revisions): a lapse is announced once, and a renewal (a later expiry)
    makes the next lapse announceable again."""

    __tablename__ = "subscribers"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    lapse_processed_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
