"""Every query of the posted reward epochs (control_plane.rewards.posting.models). Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.rewards.posting.models import RewardLeaf, RewardPublication


@dataclass(frozen=True, slots=True)
class Publication:
    chain_id: int
    epoch: int
    data_hash: str
    root: str
    total_cumulative: int
    leaf_count: int
    status: str
    propose_key: str
    proposed_tx_hash: str | None
    proposed_block: int | None
    settled_tx_hash: str | None
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: RewardPublication) -> Publication:
        return cls(
            chain_id=row.chain_id,
            epoch=row.epoch,
            data_hash=row.data_hash,
            root=row.root,
            total_cumulative=int(row.total_cumulative),
            leaf_count=row.leaf_count,
            status=row.status,
            propose_key=row.propose_key,
            proposed_tx_hash=row.proposed_tx_hash,
            proposed_block=row.proposed_block,
            settled_tx_hash=row.settled_tx_hash,
            error=row.error,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class PublicationContent:
    """What is published for an epoch: the data, its hash, and the tree's root and size."""

    chain_id: int
    epoch: int
    data: bytes
    data_hash: str
    root: str
    total_cumulative: int
    leaf_count: int

    def values(self) -> dict[str, object]:
        return {
            "chain_id": self.chain_id,
            "epoch": self.epoch,
            "data": self.data,
            "data_hash": self.data_hash,
            "root": self.root,
            "total_cumulative": self.total_cumulative,
            "leaf_count": self.leaf_count,
        }


@dataclass(frozen=True, slots=True)
class Leaf:
    account: str
    cumulative: int
    proof: list[str]


class PostingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def publication(
        self, chain_id: int, epoch: int, *, lock: bool = False
    ) -> Publication | None:
        statement = select(RewardPublication).where(
            RewardPublication.chain_id == chain_id, RewardPublication.epoch == epoch
        )
        if lock:
            statement = statement.with_for_update()
        row = await self.session.scalar(statement.execution_options(populate_existing=True))
        return Publication.of(row) if row is not None else None

    async def data(self, chain_id: int, epoch: int) -> tuple[bytes, str] | None:
        """The published bytes of an epoch and their hash; None if nothing was published, or
        only for a proposal that failed (the chain never saw it; it may be posted anew)."""
        row = (
            await self.session.execute(
                select(RewardPublication.data, RewardPublication.data_hash).where(
                    RewardPublication.chain_id == chain_id,
                    RewardPublication.epoch == epoch,
                    RewardPublication.status != "failed",
                )
            )
        ).first()
        return (bytes(row[0]), str(row[1])) if row is not None else None

    async def insert_publication(self, content: PublicationContent, *, propose_key: str) -> bool:
        """A new `queued` publication; False if the epoch has one already (a concurrent insert
        waits for the other transaction, then yields)."""
        inserted = await self.session.scalar(
            insert(RewardPublication)
            .values(**content.values(), status="queued", propose_key=propose_key)
            .on_conflict_do_nothing(
                index_elements=[RewardPublication.chain_id, RewardPublication.epoch]
            )
            .returning(RewardPublication.epoch)
        )
        return inserted is not None

    async def replace_publication(self, content: PublicationContent) -> None:
        """New content for a publication the chain never saw (its proposal failed); its old
        leaves go."""
        chain_id, epoch = content.chain_id, content.epoch
        await self.session.execute(
            delete(RewardLeaf).where(RewardLeaf.chain_id == chain_id, RewardLeaf.epoch == epoch)
        )
        await self._set(
            chain_id,
            epoch,
            **content.values(),
            status="queued",
            proposed_tx_hash=None,
            proposed_block=None,
            settled_tx_hash=None,
            error=None,
        )

    async def insert_leaves(self, chain_id: int, epoch: int, leaves: Sequence[Leaf]) -> None:
        rows = [
            {
                "chain_id": chain_id,
                "epoch": epoch,
                "account": leaf.account,
                "cumulative": leaf.cumulative,
                "proof": leaf.proof,
            }
            for leaf in leaves
        ]
        # Bounded batches: PostgreSQL takes at most 32,767 parameters per statement.
        for start in range(0, len(rows), 5_000):
            await self.session.execute(insert(RewardLeaf).values(rows[start : start + 5_000]))

    async def leaf(self, chain_id: int, epoch: int, account: str) -> Leaf | None:
        row = await self.session.scalar(
            select(RewardLeaf).where(
                RewardLeaf.chain_id == chain_id,
                RewardLeaf.epoch == epoch,
                RewardLeaf.account == account,
            )
        )
        if row is None:
            return None
        return Leaf(row.account, int(row.cumulative), list(row.proof))

    async def amounts(self, chain_id: int, epoch: int) -> dict[str, int]:
        """account -> cumulative amount of every leaf of an epoch."""
        rows = await self.session.execute(
            select(RewardLeaf.account, RewardLeaf.cumulative).where(
                RewardLeaf.chain_id == chain_id, RewardLeaf.epoch == epoch
            )
        )
        return {str(account): int(amount) for account, amount in rows.all()}

    async def unsettled(self, chain_id: int) -> list[Publication]:
        """Publications still `queued` or `proposed`, oldest epoch first."""
        rows = await self.session.scalars(
            select(RewardPublication)
            .where(
                RewardPublication.chain_id == chain_id,
                RewardPublication.status.in_(("queued", "proposed")),
            )
            .order_by(RewardPublication.epoch)
        )
        return [Publication.of(row) for row in rows.all()]

    async def latest_accepted(self, chain_id: int) -> Publication | None:
        row = await self.session.scalar(
            select(RewardPublication)
            .where(RewardPublication.chain_id == chain_id, RewardPublication.status == "accepted")
            .order_by(RewardPublication.epoch.desc())
            .limit(1)
        )
        return Publication.of(row) if row is not None else None

    async def mark_proposed(self, chain_id: int, epoch: int, *, tx_hash: str, block: int) -> None:
        await self._set(
            chain_id, epoch, status="proposed", proposed_tx_hash=tx_hash, proposed_block=block
        )

    async def mark_settled(
        self, chain_id: int, epoch: int, *, status: str, tx_hash: str | None
    ) -> None:
        await self._set(chain_id, epoch, status=status, settled_tx_hash=tx_hash)

    async def mark_failed(self, chain_id: int, epoch: int, *, error: str | None) -> None:
        await self._set(chain_id, epoch, status="failed", error=error)

    async def _set(self, chain_id: int, epoch: int, **values: object) -> None:
        await self.session.execute(
            update(RewardPublication)
            .where(RewardPublication.chain_id == chain_id, RewardPublication.epoch == epoch)
            .values(**values)
        )
