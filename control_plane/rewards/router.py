"""Scores and epochs, public: a node's scores with their breakdown and reasons, and an epoch's
summary (status, root, allocations)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from control_plane.db import Session
from control_plane.dependencies import NodeIdPath, SettingsDep, check_page_limit
from control_plane.errors import Invalid, NotFound, error_response
from control_plane.patterns import EPOCH_CURSOR, INT64_MAX
from control_plane.rewards import service
from control_plane.rewards.schemas import EpochOut, NodeScorePage

router = APIRouter(tags=["rewards"])


@router.get(
    "/nodes/{node_id}/scores",
    responses={
        404: error_response("no such node", NotFound, "no such node"),
        422: error_response("invalid input", Invalid, "cursor: not a cursor this API returned"),
    },
)
async def node_scores(
    session: Session,
    settings: SettingsDep,
    node_id: NodeIdPath,
    limit: Annotated[int, Query(ge=1, description="at most the max_page_size setting")] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=20, pattern=EPOCH_CURSOR, description="`next_cursor` of the previous page"
        ),
    ] = None,
) -> NodeScorePage:
    """A node's scores, newest epoch first: the score the allocation used, this epoch alone,
    the smoothed value, the breakdown (ppm) and the reasons in plain words. Public (deleted
    nodes keep their history)."""
    check_page_limit(limit, settings)
    return await service.node_score_page(session, settings.chain_id, node_id, cursor, limit)


@router.get(
    "/epochs/{epoch}",
    responses={404: error_response("neither scored nor proposed", NotFound, "no such epoch")},
)
async def get_epoch(
    session: Session,
    settings: SettingsDep,
    epoch: Annotated[int, Path(ge=1, le=INT64_MAX, description="the epoch number")],
) -> EpochOut:
    """An epoch's summary: its status (scored here; proposed, accepted or revoked on-chain), the
    root and data hash, the budget and each operator's part and cumulative amount. Its full data
    (per-node metrics, breakdowns, leaves) is at `GET /v1/epochs/{n}/data`. Public."""
    return await service.epoch_summary(session, settings.chain_id, epoch)
