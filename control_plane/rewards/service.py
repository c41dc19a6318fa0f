"""The rewards API's use cases: a node's score pages and an epoch's summary. The routers call
these; the queries stay in the repository (the request owns the transaction)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import Invalid, NotFound
from control_plane.patterns import INT64_MAX
from control_plane.rewards import repository
from control_plane.rewards.schemas import EpochOut, NodeScorePage, epoch_out, node_score_out


async def node_score_page(
    session: AsyncSession, chain_id: int, node_id: str, cursor: str | None, limit: int
) -> NodeScorePage:
    """A node's scores, newest epoch first, `limit` a page, after `cursor` (an epoch number)."""
    before: int | None = None
    if cursor is not None:
        if not cursor.isdigit():
            raise Invalid("cursor: not a cursor this API returned")
        before = min(int(cursor), INT64_MAX)  # no epoch is past a BIGINT
    node = node_id.lower()
    if not await repository.node_exists(session, node):
        raise NotFound("no such node")
    views = await repository.node_scores(session, chain_id, node, before, limit + 1)
    more = len(views) > limit
    views = views[:limit]
    return NodeScorePage(
        items=[node_score_out(v) for v in views],
        next_cursor=str(views[-1].record.epoch) if more else None,
    )


async def epoch_summary(session: AsyncSession, chain_id: int, epoch: int) -> EpochOut:
    """An epoch as scored here and as proposed on-chain; NotFound when it is neither."""
    scored = await repository.scored_epoch(session, chain_id, epoch)
    onchain = await repository.onchain_epoch(session, chain_id, epoch)
    if scored is None and onchain is None:
        raise NotFound("no such epoch")
    allocations = await repository.allocations(session, chain_id, epoch)
    nodes_scored = await repository.count_scores(session, chain_id, epoch)
    return epoch_out(epoch, scored, onchain, allocations, nodes_scored)
