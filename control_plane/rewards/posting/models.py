"""What the control plane posted for each reward epoch: the published data (the exact bytes whose
keccak256 went on-chain as `dataHash`), the tree's root and total, and every cumulative leaf
with its proof. Written when an epoch is proposed, read by `GET /v1/rewards/{address}` and
`GET /v1/epochs/{n}/data`. (The indexer's `reward_epochs` mirrors the chain's events; these
tables hold what only the control plane knows.)"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base

PUBLICATION_STATUSES: Final = ("queued", "proposed", "accepted", "revoked", "failed")


class RewardPublication(Base):
    """One epoch as the control plane proposed it.

    Status: `queued` (the proposal is in the outbox) -> `proposed` (mined) -> `accepted` or
    `revoked` (settled on-chain); `failed` if the proposal never landed (it may be queued again,
    with the same epoch number, since the chain never saw it)."""

    __tablename__ = "reward_publications"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # the published JSON, byte for byte
    data_hash: Mapped[str] = mapped_column(String(66))  # keccak256(data), 0x-hex
    root: Mapped[str] = mapped_column(String(66))
    total_cumulative: Mapped[int] = mapped_column(Numeric(78, 0))
    leaf_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    propose_key: Mapped[str] = mapped_column(String(200))  # its outbox idempotency key
    proposed_tx_hash: Mapped[str | None] = mapped_column(String(66))
    proposed_block: Mapped[int | None] = mapped_column(BigInteger)
    settled_tx_hash: Mapped[str | None] = mapped_column(String(66))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'proposed', 'accepted', 'revoked', 'failed')",
            name="status",
        ),
        CheckConstraint("epoch > 0", name="epoch_positive"),
    )


class RewardLeaf(Base):
    """One operator's cumulative amount in an epoch's tree, with its Merkle proof."""

    __tablename__ = "reward_publication_leaves"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account: Mapped[str] = mapped_column(String(42), primary_key=True)  # lower-case
    cumulative: Mapped[int] = mapped_column(Numeric(78, 0))
    proof: Mapped[list[str]] = mapped_column(JSONB)  # 0x-hex sibling hashes, leaf to root

    __table_args__ = (
        ForeignKeyConstraint(
            ["chain_id", "epoch"],
            ["reward_publications.chain_id", "reward_publications.epoch"],
            ondelete="CASCADE",
        ),
        CheckConstraint("cumulative >= 0", name="cumulative_not_negative"),
    )
