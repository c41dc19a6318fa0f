"""What node agents use: the desired peer set (long-poll), heartbeats and metrics. Every route
takes a node-agent token and serves only the token's own node."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from control_plane.agent import service
from control_plane.agent.feed import PeerFeed
from control_plane.agent.schemas import (
    HeartbeatIn,
    HeartbeatOut,
    MetricsIn,
    MetricsOut,
    NodePools,
    PeerSet,
)
from control_plane.auth.dependencies import NodePrincipal
from control_plane.auth.principal import Principal
from control_plane.db import Session
from control_plane.dependencies import ServicesDep, SettingsDep
from control_plane.errors import Forbidden, Invalid, error_response
from control_plane.patterns import INT64_MAX, NODE_ID

router = APIRouter(prefix="/agent", tags=["agent"])


async def _feed(request: Request) -> PeerFeed:
    feed: PeerFeed = request.app.state.feed
    return feed


Feed = Annotated[PeerFeed, Depends(_feed)]


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response("missing or invalid token"),
    403: error_response("not a node token, or another node's"),
    404: error_response("the token's node does not exist"),
    422: error_response("invalid input"),
}


def _own_node(principal: Principal, node_id: str | None = None) -> str:
    if principal.node_id is None:
        raise Forbidden("this token is not scoped to a node")
    own = principal.node_id.lower()
    if node_id is not None and node_id.lower() != own:
        raise Forbidden("a node token reads only its own node")
    return own


@router.get(
    "/peers",
    responses={
        **_ERRORS,
        429: error_response("too many long-polls parked; retry after Retry-After"),
    },
)
async def get_peers(
    principal: NodePrincipal,
    feed: Feed,
    services: ServicesDep,
    settings: SettingsDep,
    since: Annotated[
        int | None,
        Query(ge=0, le=INT64_MAX, description="The revision you have; absent: send everything."),
    ] = None,
    wait: Annotated[
        int,
        Query(
            ge=0,
            description="Seconds to wait for a change after `since` (0 to the "
            "long_poll_max_seconds setting, 60 by default). With no change, the answer "
            "comes after a random time between 3/4 of `wait` and `wait`, so agents that "
            "parked together come back spread out.",
        ),
    ] = 0,
    node_id: Annotated[
        str | None,
        Query(
            max_length=66, pattern=NODE_ID, description="Optional; must be the token's own node."
        ),
    ] = None,
    diff: Annotated[
        bool,
        Query(
            description="You can apply a diff: changed answers carry `history`, and with `since` "
            "and `history` they are a diff when the control plane still has every change since "
            "(else the whole set). Absent: always the whole set."
        ),
    ] = False,
    history: Annotated[
        uuid.UUID | None,
        Query(description="With diff=true and since: the history your set at `since` is from."),
    ] = None,
) -> PeerSet:
    """The node's desired peer set and its monotonic revision. Answers at once when the
    revision is past `since` (or `since` is absent); otherwise waits up to `wait` seconds for a
    change, then answers `{"revision": since, "changed": false, "peers": null}`: keep your set.
    Each peer carries its subscriber's expiry: remove it then even if this API is unreachable.
    With `diff=true`, see `history`, `diff_since` and `removed` in the answer's schema."""
    if wait > settings.long_poll_max_seconds:
        raise Invalid(f"wait: at most {settings.long_poll_max_seconds} seconds")
    if history is not None and not diff:
        raise Invalid("history: only with diff=true")
    if history is not None and since is None:
        raise Invalid("history: a diff needs since, the revision your set is at")
    ask = service.DiffAsk(history) if diff else None
    return await service.peer_set(feed, services, _own_node(principal, node_id), since, wait, ask)


@router.get("/pools", responses=_ERRORS)
async def get_pools(principal: NodePrincipal, session: Session) -> NodePools:
    """The token's node and its IPv4 and IPv6 device pools. `nodus-agent pools` stores them once
    (after the node is registered here), and the agent then refuses any peer outside them, so a
    broken or compromised control plane cannot route other addresses through the node."""
    return await service.node_pools(session, _own_node(principal))


@router.post("/heartbeat", responses=_ERRORS)
async def post_heartbeat(
    principal: NodePrincipal, session: Session, report: HeartbeatIn
) -> HeartbeatOut:
    """Stores the agent's report of itself and marks the node as heard from now. Answers the
    node's current revision: an agent whose applied revision is older polls again."""
    return await service.record_heartbeat(session, _own_node(principal), report)


@router.post("/metrics", responses=_ERRORS)
async def post_metrics(principal: NodePrincipal, session: Session, report: MetricsIn) -> MetricsOut:
    """Per-peer handshake time and cumulative byte counters, stored for scoring (at most
    10,000 peers per report). Peers that are not configs on this node are ignored and counted."""
    return await service.record_metrics(session, _own_node(principal), report)
