"""Nodes: register (the on-chain operator of an Active node), list and read (public), change and
delete (the operator only: another wallet gets 403, since nodes are public anyway)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from control_plane.auth.dependencies import WalletPrincipal, current_principal, wallet_of
from control_plane.db import Session
from control_plane.dependencies import ChainDep, NodeIdPath, SettingsDep, check_page_limit
from control_plane.errors import (
    ChainUnavailable,
    EndpointInUse,
    Forbidden,
    Invalid,
    NodeNotActive,
    NotFound,
    Unauthorized,
    error_response,
)
from control_plane.nodes import service
from control_plane.nodes.repository import NodeFilter, NodeSort
from control_plane.nodes.schemas import NodeIn, NodeOut, NodePage, NodePatch, Protocol
from control_plane.nodes.service import PPM
from control_plane.openapi import OPTIONAL_WALLET_SECURITY
from control_plane.patterns import CURSOR

router = APIRouter(prefix="/nodes", tags=["nodes"])

_UNAUTHORIZED = error_response("no or an invalid token", Unauthorized, "missing bearer token")
_INVALID = error_response("invalid input", Invalid, "country: an ISO 3166-1 alpha-2 country code")
_NOT_FOUND = error_response("no such node (or it was deleted)", NotFound, "no such node")
_NOT_OWNER = error_response(
    "not the node's operator", Forbidden, "only the node's operator can change it"
)
_CHAIN = error_response(
    "the chain is unreachable (Retry-After)",
    ChainUnavailable,
    "the chain RPC is unreachable; retry shortly",
)


@router.post(
    "",
    status_code=201,
    responses={
        401: _UNAUTHORIZED,
        403: error_response(
            "the node is not Active in NodeRegistry, or the caller is not its operator",
            Forbidden,
            "only the node's on-chain operator can register it",
        ),
        409: error_response(
            "already registered (`conflict`), or another live node uses the endpoint "
            "(`endpoint_in_use`)",
            EndpointInUse,
            "another live node already uses the endpoint vpn.example.net:51820",
        ),
        422: _INVALID,
        503: _CHAIN,
    },
)
async def register_node(
    principal: WalletPrincipal,
    session: Session,
    settings: SettingsDep,
    chain: ChainDep,
    body: NodeIn,
) -> NodeOut:
    """Registers a node staked in NodeRegistry. Any signed-in wallet may call; the node must be
    Active on-chain (read live) and the caller its operator. Address pools default to
    `10.x.0.0/16` and `fdxx:xxxx:xxxx::/112` derived from the node id (index 1 of each is the
    node's own address). An OpenVPN node gets its own CA, server certificate and tls-crypt key
    here (private keys are stored encrypted); the response carries the CA certificate."""
    return await service.register_node(session, chain, settings, wallet_of(principal), body)


@router.get("", responses={422: _INVALID})
async def list_nodes(
    session: Session,
    settings: SettingsDep,
    country: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2", examples=["DE"]),
    ] = None,
    protocol: Annotated[Protocol | None, Query(description="nodes serving it")] = None,
    online: Annotated[
        bool | None,
        Query(description="true: a heartbeat within 60 s; false: none within 60 s"),
    ] = None,
    min_score: Annotated[
        float | None,
        Query(
            ge=0,
            le=1,
            description="only nodes whose latest score is at least this (0 to 1); unscored "
            "nodes drop out once it is above 0",
        ),
    ] = None,
    sort: Annotated[
        NodeSort,
        Query(
            description="`created`: oldest first; `score`: best latest score first, "
            "unscored nodes last"
        ),
    ] = "created",
    limit: Annotated[int, Query(ge=1, description="at most the max_page_size setting")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=CURSOR,
            description="`next_cursor` of the previous page (of the same `sort`)",
        ),
    ] = None,
) -> NodePage:
    """Live nodes (deleted ones are hidden), a page at a time (keyset cursor), each with the
    score of its newest scored epoch."""
    check_page_limit(limit, settings)
    filters = NodeFilter(
        country=country.upper() if country else None,
        protocol=protocol,
        online=online,
        min_score_ppm=math.ceil(round(min_score * PPM, 6)) if min_score else None,
    )
    return await service.list_nodes(session, filters, cursor, limit, sort)


@router.get(
    "/{node_id}",
    responses={401: _UNAUTHORIZED, 404: _NOT_FOUND, 422: _INVALID},
    openapi_extra={"security": OPTIONAL_WALLET_SECURITY},
)
async def get_node(
    request: Request, session: Session, settings: SettingsDep, node_id: NodeIdPath
) -> NodeOut:
    """A live node. Public; with the operator's token the pools and the OpenVPN CA certificate
    are included too (an invalid token is a 401, no token is fine)."""
    caller: str | None = None
    if request.headers.get("authorization"):
        principal = await current_principal(request, session, settings)
        caller = None if principal.node_id is not None else principal.address
    return await service.get_node(session, node_id.lower(), caller)


@router.patch(
    "/{node_id}",
    responses={
        401: _UNAUTHORIZED,
        403: _NOT_OWNER,
        404: _NOT_FOUND,
        409: error_response(
            "the node is exiting or withdrawn on-chain (`node_not_active`), or another live "
            "node uses the endpoint (`endpoint_in_use`)",
            NodeNotActive,
            "the node is exiting in NodeRegistry; an exiting or withdrawn node cannot be changed",
        ),
        422: _INVALID,
        503: _CHAIN,
    },
)
async def update_node(
    principal: WalletPrincipal,
    session: Session,
    settings: SettingsDep,
    chain: ChainDep,
    node_id: NodeIdPath,
    patch: NodePatch,
) -> NodeOut:
    """Changes the endpoint, country, protocols, WireGuard public key or OpenVPN port. The
    operator only (others: 403). Dropping a protocol revokes the node's live configs of it."""
    return await service.update_node(
        session, chain, settings, wallet_of(principal), node_id.lower(), patch
    )


@router.delete(
    "/{node_id}",
    status_code=204,
    response_class=Response,
    responses={401: _UNAUTHORIZED, 403: _NOT_OWNER, 404: _NOT_FOUND},
)
async def delete_node(principal: WalletPrincipal, session: Session, node_id: NodeIdPath) -> None:
    """Soft-deletes the node: it disappears from the API, its live configs are revoked and its
    agent's next poll gets an empty set. The operator only (others: 403). It can be registered
    again later (with POST)."""
    await service.delete_node(session, wallet_of(principal), node_id.lower())
