"""The chain mirror tables: what the indexer learned from chain events. The indexer alone writes
them (indexer/repository.py); the domains read them. They sit low in the layers (see
docs/architecture.md) so that every domain may read them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class ChainCursor(Base):
    """The next block the indexer will read, per chain."""

    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    next_block: Mapped[int] = mapped_column(BigInteger)


class IndexedBlock(Base):
    """Hashes of recently indexed blocks: a stored hash that no longer matches the chain means
    a reorg, and the indexer rewinds to the last block that still matches."""

    __tablename__ = "indexed_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(66))


class ChainNode(Base):
    """NodeRegistry state as the indexer learned it from events (the indexer alone writes it).
    `active` mirrors `NodeRegistry.isActive`, re-read whenever an event touches the node or the
    minimum stake changes."""

    __tablename__ = "chain_nodes"

    node_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    operator: Mapped[str] = mapped_column(String(42), index=True)
    agent: Mapped[str] = mapped_column(String(42))
    stake: Mapped[int] = mapped_column(Numeric(78, 0))
    status: Mapped[str] = mapped_column(String(16))  # active | exiting | withdrawn
    active: Mapped[bool]
    updated_block: Mapped[int] = mapped_column(BigInteger)


EPOCH_STATUSES = ("proposed", "accepted", "revoked")


class RewardEpoch(Base):
    """A reward epoch as the RewardDistributor announced it: `RootProposed` creates the row,
    `RootAccepted` or `RootRevoked` settles it. The chain indexer alone writes it; a reorg that
    drops the proposal deletes the row, one that drops only the settlement reopens it."""

    __tablename__ = "reward_epochs"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[str] = mapped_column(String(66))
    total_cumulative: Mapped[int] = mapped_column(Numeric(78, 0))
    data_hash: Mapped[str] = mapped_column(String(66))
    valid_at: Mapped[datetime]  # end of the challenge window
    status: Mapped[str] = mapped_column(String(16))
    proposed_tx_hash: Mapped[str] = mapped_column(String(66))
    proposed_log_index: Mapped[int] = mapped_column(Integer)
    proposed_block: Mapped[int] = mapped_column(BigInteger, index=True)
    settled_tx_hash: Mapped[str | None] = mapped_column(String(66))
    settled_log_index: Mapped[int | None] = mapped_column(Integer)
    settled_block: Mapped[int | None] = mapped_column(BigInteger, index=True)
    indexed_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "status IN ('proposed', 'accepted', 'revoked')",
            name="status",
        ),
    )


class ChainIdentity(Base):
    """Which chain and deployment the mirror (and every row derived from it) describes: one row,
    checked at start-up (indexer/identity.py). A restarted dev chain has the same chain id and,
    deployed by the same account, the same addresses, but another genesis block."""

    __tablename__ = "chain_identity"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    genesis_hash: Mapped[str] = mapped_column(String(66))
    deployment: Mapped[str] = mapped_column(String(66))
    start_block: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
