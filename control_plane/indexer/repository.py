"""Every query of the chain indexer's own tables: its cursor, the hashes of recent blocks, the
mirror of NodeRegistry (`chain_nodes`) and reward epochs. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.client import OnChainNode
from control_plane.indexer.models import ChainCursor, ChainNode, IndexedBlock, RewardEpoch


class ChainRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Cursor

    async def lock_cursor(self, chain_id: int, start_block: int) -> int:
        """The next block to read, creating the cursor at `start_block` the first time; the row
        stays locked until the transaction ends."""
        await self.session.execute(
            insert(ChainCursor)
            .values(chain_id=chain_id, next_block=start_block)
            .on_conflict_do_nothing(index_elements=[ChainCursor.chain_id])
        )
        next_block = await self.session.scalar(
            select(ChainCursor.next_block).where(ChainCursor.chain_id == chain_id).with_for_update()
        )
        assert next_block is not None
        return int(next_block)

    async def set_cursor(self, chain_id: int, next_block: int) -> None:
        await self.session.execute(
            update(ChainCursor)
            .where(ChainCursor.chain_id == chain_id)
            .values(next_block=next_block)
        )

    # Block hashes

    async def recent_blocks(self, chain_id: int, limit: int) -> Sequence[tuple[int, str]]:
        """(number, hash) of the newest stored blocks, newest first."""
        rows = await self.session.execute(
            select(IndexedBlock.number, IndexedBlock.hash)
            .where(IndexedBlock.chain_id == chain_id)
            .order_by(IndexedBlock.number.desc())
            .limit(limit)
        )
        return [(int(number), str(hash_)) for number, hash_ in rows.all()]

    async def block_hash(self, chain_id: int, number: int) -> str | None:
        return await self.session.scalar(
            select(IndexedBlock.hash).where(
                IndexedBlock.chain_id == chain_id, IndexedBlock.number == number
            )
        )

    async def store_blocks(self, chain_id: int, blocks: dict[int, str]) -> None:
        if not blocks:
            return
        statement = insert(IndexedBlock).values(
            [{"chain_id": chain_id, "number": n, "hash": h} for n, h in sorted(blocks.items())]
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[IndexedBlock.chain_id, IndexedBlock.number],
                set_={"hash": statement.excluded.hash},
            )
        )

    async def delete_blocks_after(self, chain_id: int, number: int) -> None:
        await self.session.execute(
            delete(IndexedBlock).where(
                IndexedBlock.chain_id == chain_id, IndexedBlock.number > number
            )
        )

    async def prune_blocks_before(self, chain_id: int, number: int) -> None:
        await self.session.execute(
            delete(IndexedBlock).where(
                IndexedBlock.chain_id == chain_id, IndexedBlock.number < number
            )
        )

    # NodeRegistry mirror

    async def chain_node_ids(self) -> list[str]:
        rows = await self.session.scalars(select(ChainNode.node_id).order_by(ChainNode.node_id))
        return list(rows)

    async def chain_nodes_updated_after(self, block: int) -> list[str]:
        rows = await self.session.scalars(
            select(ChainNode.node_id)
            .where(ChainNode.updated_block > block)
            .order_by(ChainNode.node_id)
        )
        return list(rows)

    async def upsert_chain_node(self, node: OnChainNode, block: int) -> None:
        values = {
            "operator": node.operator,
            "agent": node.agent,
            "stake": node.stake,
            "status": node.status,
            "active": node.active,
            "updated_block": block,
        }
        statement = insert(ChainNode).values(node_id=node.node_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[ChainNode.node_id], set_=values)
        )

    async def delete_chain_node(self, node_id: str) -> None:
        await self.session.execute(delete(ChainNode).where(ChainNode.node_id == node_id))

    # Reward epochs

    async def insert_proposed_epoch(
        self,
        *,
        chain_id: int,
        epoch: int,
        root: str,
        total_cumulative: int,
        data_hash: str,
        valid_at: datetime,
        tx_hash: str,
        log_index: int,
        block: int,
    ) -> None:
        await self.session.execute(
            insert(RewardEpoch)
            .values(
                chain_id=chain_id,
                epoch=epoch,
                root=root,
                total_cumulative=total_cumulative,
                data_hash=data_hash,
                valid_at=valid_at,
                status="proposed",
                proposed_tx_hash=tx_hash,
                proposed_log_index=log_index,
                proposed_block=block,
            )
            .on_conflict_do_nothing(index_elements=[RewardEpoch.chain_id, RewardEpoch.epoch])
        )

    async def settle_epoch(
        self,
        *,
        chain_id: int,
        epoch: int,
        status: str,
        tx_hash: str,
        log_index: int,
        block: int,
    ) -> bool:
        """Marks a proposed epoch accepted or revoked; False if there was nothing to settle
        (already settled by this very event, or never proposed)."""
        settled = await self.session.scalar(
            update(RewardEpoch)
            .where(
                RewardEpoch.chain_id == chain_id,
                RewardEpoch.epoch == epoch,
                RewardEpoch.status == "proposed",
            )
            .values(
                status=status,
                settled_tx_hash=tx_hash,
                settled_log_index=log_index,
                settled_block=block,
            )
            .returning(RewardEpoch.epoch)
        )
        return settled is not None

    async def rollback_epochs_after(self, chain_id: int, block: int) -> None:
        """Forgets what blocks after `block` said: proposals are deleted, settlements reopened."""
        await self.session.execute(
            delete(RewardEpoch).where(
                RewardEpoch.chain_id == chain_id, RewardEpoch.proposed_block > block
            )
        )
        await self.session.execute(
            update(RewardEpoch)
            .where(RewardEpoch.chain_id == chain_id, RewardEpoch.settled_block > block)
            .values(
                status="proposed",
                settled_tx_hash=None,
                settled_log_index=None,
                settled_block=None,
            )
        )
