"""A node's health: the probers' view round by round (public), and one probe on demand for the
node's agent or operator (`nodus-agent selftest`), rate limited per node."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from control_plane.auth.dependencies import SessionlessPrincipal, node_agent, wallet_of
from control_plane.auth.rate_limit import TokenBucketLimiter
from control_plane.db import Session
from control_plane.dependencies import ChainDep, NodeIdPath, ServicesDep, SettingsDep
from control_plane.errors import (
    ChainUnavailable,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthorized,
    error_response,
)
from control_plane.prober.router import ProberSettingsDep
from control_plane.rewards import health
from control_plane.rewards.health_schemas import NodeHealthOut, ProbeNowOut

router = APIRouter(tags=["rewards"])

MAX_HEALTH_ROUNDS = 100

_NOT_FOUND = error_response("no such node", NotFound, "no such node")


@router.get(
    "/nodes/{node_id}/health",
    responses={
        404: _NOT_FOUND,
        422: error_response("invalid input", Invalid, "limit: Input should be less than 100"),
    },
)
async def node_health(
    session: Session,
    settings: SettingsDep,
    prober_settings: ProberSettingsDep,
    node_id: NodeIdPath,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HEALTH_ROUNDS, description="how many of the newest rounds")
    ] = 20,
) -> NodeHealthOut:
    """The probers' view of a node: its newest probe rounds (one prober's probe each, newest
    first) with a verdict, a reason code and a line on how to fix it, and a summary verdict
    with its reason (also when the node is not probed at all: `not_active_on_chain`,
    `not_indexed`, `deleted`, `never_probed`, `no_recent_rounds`). Public."""
    return await health.node_health(
        session, settings.chain_id, prober_settings, node_id.lower(), limit
    )


def _limiter(request: Request, interval: float) -> TokenBucketLimiter:
    """One bucket of one probe per node per `interval`, per application (so per replica)."""
    found: TokenBucketLimiter | None = getattr(request.app.state, "probe_now_limiter", None)
    if found is None or found.capacity / found.rate != interval:
        found = TokenBucketLimiter(capacity=1, period=interval)
        request.app.state.probe_now_limiter = found
    return found


@router.post(
    "/nodes/{node_id}/probe",
    responses={
        401: error_response(
            "no or an invalid token (a node token whose agent key changed on-chain, too)",
            Unauthorized,
            "missing bearer token",
        ),
        403: error_response(
            "neither this node's agent nor its operator",
            Forbidden,
            "only the node's operator or its agent can ask for a probe",
        ),
        404: _NOT_FOUND,
        429: error_response(
            "the node was probed on demand within the interval (Retry-After)",
            RateLimited,
            "this node was probed on demand less than 60 s ago; retry in 41 s",
        ),
        503: error_response(
            "the chain is unreachable (Retry-After)",
            ChainUnavailable,
            "the chain RPC is unreachable; retry shortly",
        ),
    },
)
async def probe_node(
    request: Request,
    principal: SessionlessPrincipal,
    services: ServicesDep,
    chain: ChainDep,
    prober_settings: ProberSettingsDep,
    node_id: NodeIdPath,
) -> ProbeNowOut:
    """Probes the node once, now, with the probers' own code (a fresh nonce; the answer must
    be signed by the node's on-chain agent key) and answers the verdict, the reason code, the
    fix, the latency and the score parts that probes decide. For the node's agent (its node
    token) or its operator (wallet token or API key). One probe per node per
    `NODUS_PROBER_ON_DEMAND_INTERVAL_SECONDS` (60; per replica; 429 with `Retry-After`). Not
    stored: it does not count for the score, only the probers' rounds do."""
    if principal.node_id is not None:
        await node_agent(request, principal, None)
        caller = health.ProbeCaller(agent_of=principal.node_id.lower())
    else:
        caller = health.ProbeCaller(operator=wallet_of(principal))
    limiter = _limiter(request, prober_settings.on_demand_interval_seconds)
    return await health.probe_now(
        services.sessions,
        chain,
        prober_settings,
        limiter,
        node_id.lower(),
        caller,
        tracer=services.tracer,
    )
