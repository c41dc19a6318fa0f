"""The transaction outbox of the control plane's own keys (the reward oracle).

One row of `tx_outbox` is one logical action ("propose-epoch-7"), unique per chain by its
idempotency key, so an action is never sent twice. Its life:

    built --sign--> signed --broadcast--> sent --receipt--> mined
      |                                          `--> failed (reverted, or nonce used elsewhere)
      `--> failed (the call would revert: no nonce is used)

Each signed transaction is a `tx_attempts` row (raw bytes and hash), stored and committed BEFORE
it is broadcast: after a crash the very same bytes are sent again, never a second transaction
with a new nonce. A replacement of a stuck transaction (same nonce, higher fees) is one more
attempt. `tx_sender_keys` holds each key's next nonce, read and advanced under a row lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base

TX_STATUSES: Final = ("built", "signed", "sent", "mined", "failed")
FINAL_TX_STATUSES: Final = frozenset({"mined", "failed"})


class TxSenderKey(Base):
    """A sending key on one chain and the next nonce the control plane will give it."""

    __tablename__ = "tx_sender_keys"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)  # lower-case
    next_nonce: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class OutboxTx(Base):
    """One logical transaction of a control-plane key (see the module docstring)."""

    __tablename__ = "tx_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(String(42))  # lower-case
    idempotency_key: Mapped[str] = mapped_column(String(200))
    to_address: Mapped[str] = mapped_column(String(42))  # lower-case
    data: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[int] = mapped_column(Numeric(78, 0), default=0)
    status: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    gas_limit: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    mined_tx_hash: Mapped[str | None] = mapped_column(String(66))
    mined_block: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (
        UniqueConstraint("chain_id", "idempotency_key"),
        # A nonce belongs to one logical transaction of a key (NULLs, not yet signed, are
        # distinct).
        UniqueConstraint("chain_id", "sender", "nonce"),
        # The sender's pass: the non-final rows of one key.
        Index("ix_tx_outbox_chain_id_sender_status", "chain_id", "sender", "status"),
        CheckConstraint(
            "status IN ('built', 'signed', 'sent', 'mined', 'failed')",
            name="status",
        ),
        CheckConstraint(
            "status IN ('built', 'failed') OR (nonce IS NOT NULL AND gas_limit IS NOT NULL)",
            name="signed_has_nonce",
        ),
    )


class TxAttempt(Base):
    """One signed transaction of an outbox row: the first, or a fee-bumped replacement."""

    __tablename__ = "tx_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("tx_outbox.id", ondelete="CASCADE"), index=True
    )
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    nonce: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    max_fee_per_gas: Mapped[int] = mapped_column(Numeric(78, 0))
    max_priority_fee_per_gas: Mapped[int] = mapped_column(Numeric(78, 0))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # First time the node accepted it (the stuck timer starts here); NULL until then.
    broadcast_at: Mapped[datetime | None]
    # Why the node refused it (e.g. an underpriced replacement); such an attempt is not resent.
    rejected: Mapped[str | None] = mapped_column(Text)
