from __future__ import annotations

from sqlalchemy import BigInteger, String
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
