"""Probes: the targets probers measure, signed samples from external probers, each node's
samples (public, verified on read), and the probers' allow-list (admins manage it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from control_plane.auth.dependencies import require_role
from control_plane.auth.principal import Principal, Role
from control_plane.db import Session
from control_plane.dependencies import SettingsDep, check_page_limit
from control_plane.errors import (
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    error_response,
)
from control_plane.nodes.schemas import normalize_node_id
from control_plane.patterns import ADDRESS, CURSOR, NODE_ID
from control_plane.prober import service
from control_plane.prober.intake import SampleBudget, take_post_token
from control_plane.prober.schemas import (
    ProbeBatchIn,
    ProbeBatchOut,
    ProberIn,
    ProberOut,
    ProbeSamplePage,
    ProbeTargetsOut,
)
from control_plane.prober.settings import ProberSettings

router = APIRouter(tags=["probes"])


async def get_prober_settings(settings: SettingsDep) -> ProberSettings:
    """The prober section of the app's settings (tests override this)."""
    return settings.prober


ProberSettingsDep = Annotated[ProberSettings, Depends(get_prober_settings)]


async def post_token(request: Request, prober_settings: ProberSettingsDep) -> SampleBudget:
    """The client's token for one post (429 beyond NODUS_PROBER_POSTS_PER_MINUTE), spent before
    the body is validated."""
    return take_post_token(request, prober_settings)


AdminPrincipal = Annotated[Principal, Depends(require_role(Role.ADMIN))]
ProberAddress = Annotated[
    str,
    Path(
        pattern=ADDRESS,
        description="the prober's signing address",
        examples=["0x90f79bf6eb2c4f870365e785982e1f101e93b906"],
    ),
]


_INVALID = error_response(
    "invalid input", Invalid, "samples[0]: round 1767225600 is older than 900 s"
)


@router.get("/probes/targets")
async def probe_targets(session: Session, settings: SettingsDep) -> ProbeTargetsOut:
    """What every prober measures each round: each live node that is Active on-chain, at
    `http://<endpoint host>:<endpoint port>/health` (the agent's health endpoint listens on TCP
    at the port number its clients use over UDP). Public."""
    return await service.targets(session, settings.chain_id)


@router.post(
    "/probes",
    responses={
        401: error_response(
            "a sample's signature is not its prober's",
            Unauthorized,
            "samples[0]: the signature is not the prober's",
        ),
        403: error_response(
            "a prober is not allow-listed (or was revoked)",
            Forbidden,
            "not an allow-listed prober: 0x90f79bf6eb2c4f870365e785982e1f101e93b906",
        ),
        413: error_response("the body is over 1 MiB", PayloadTooLarge, "request body too large"),
        422: _INVALID,
        429: error_response(
            "too many posts from this address, or samples from this prober; see Retry-After",
            RateLimited,
            "too many probe posts from this address; retry in 1 s",
        ),
    },
)
async def post_probes(
    session: Session,
    settings: SettingsDep,
    prober_settings: ProberSettingsDep,
    budget: Annotated[SampleBudget, Depends(post_token)],
    body: ProbeBatchIn,
) -> ProbeBatchOut:
    """Signed samples from an external prober (`nodus prober run`). No token: each sample is
    signed by its prober (EIP-191 over the canonical sample with this chain's id, see
    docs/scoring.md), and the prober must be allow-listed. At most 1,000 samples (422) and
    1 MiB (413) a post; posts per client IP and new samples per prober are rate limited (429
    with `Retry-After`). Idempotent per (prober, node, round): a sample already stored is
    counted in `duplicates` and not checked again."""
    return await service.accept_samples(session, settings.chain_id, body, prober_settings, budget)


@router.get(
    "/probes",
    responses={404: error_response("no such node", NotFound, "no such node"), 422: _INVALID},
)
async def list_probes(
    session: Session,
    settings: SettingsDep,
    node_id: Annotated[
        str,
        Query(
            pattern=NODE_ID,
            description="the node whose samples to list",
            examples=["0x6e6f6465000000000000000000000000000000000000000000000000000000a1"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, description="at most the max_page_size setting")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=200, pattern=CURSOR, description="`next_cursor` of the previous page"),
    ] = None,
) -> ProbeSamplePage:
    """A node's probe samples, newest round first, each with its signature and whether it
    verifies: what its uptime and latency were computed from. Public."""
    check_page_limit(limit, settings)
    try:
        node = normalize_node_id(node_id)
    except ValueError as exc:
        raise Invalid(f"node_id: {exc}") from exc
    return await service.node_samples(session, settings.chain_id, node, cursor, limit)


@router.get("/probers")
async def list_probers(session: Session) -> list[ProberOut]:
    """The probers whose samples count (and revoked ones, whose samples no longer do). Public."""
    return await service.list_probers(session)


@router.put(
    "/probers/{address}",
    responses={
        401: error_response("no or an invalid token", Unauthorized, "missing bearer token"),
        403: error_response("not an admin", Forbidden, "this needs the admin role"),
    },
)
async def put_prober(
    _: AdminPrincipal, session: Session, address: ProberAddress, body: ProberIn
) -> ProberOut:
    """Allow-lists a prober's key (or renames it, or re-enables a revoked one). Admins only."""
    return await service.put_prober(session, address.lower(), body.name)


@router.delete(
    "/probers/{address}",
    responses={
        401: error_response("no or an invalid token", Unauthorized, "missing bearer token"),
        403: error_response("not an admin", Forbidden, "this needs the admin role"),
        404: error_response("no such prober", NotFound, "no such prober"),
    },
)
async def revoke_prober(_: AdminPrincipal, session: Session, address: ProberAddress) -> ProberOut:
    """Revokes a prober: its samples, past and future, stop counting (the row stays, so the
    record of what it signed stays too). Admins only."""
    return await service.revoke_prober(session, address.lower())
