"""Device configs of the calling subscriber: issue, list, read, revoke. A config is private: any
other wallet gets 404 for it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from control_plane.auth.dependencies import SubscriberPrincipal, wallet_of
from control_plane.auth.rate_limit import spend_config_change
from control_plane.configs import service
from control_plane.configs.schemas import ConfigIn, ConfigOut, ConfigPage
from control_plane.db import Session
from control_plane.dependencies import ServicesDep, SettingsDep, check_page_limit
from control_plane.errors import (
    ChainUnavailable,
    ConfigRevoked,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PaymentRequired,
    RateLimited,
    Unauthorized,
    error_response,
)
from control_plane.patterns import CURSOR

router = APIRouter(prefix="/configs", tags=["configs"])


_UNAUTHORIZED = error_response("no or an invalid token", Unauthorized, "missing bearer token")
_FORBIDDEN = error_response("not a wallet's token", Forbidden, "this needs the subscriber role")
_NOT_FOUND = error_response("no such live config of yours", NotFound, "no such config")
_RATE_LIMITED = error_response(
    "too many config changes by this wallet (Retry-After)",
    RateLimited,
    "too many requests; retry in 3 s",
)


@router.post(
    "",
    status_code=201,
    responses={
        401: _UNAUTHORIZED,
        402: error_response(
            "the subscription is not active (the message says since when, or never paid)",
            PaymentRequired,
            "the subscription expired at 2026-04-01T12:00:00+00:00; renew it on-chain",
        ),
        403: _FORBIDDEN,
        404: error_response("no such node (or it was deleted)", NotFound, "no such node"),
        409: error_response(
            "the node is not Active on-chain, the device limit is reached, the key is "
            "already live on this node, or the node is out of service (`node_misconfigured`)",
            Conflict,
            "device limit reached (5 live configs); revoke one first",
        ),
        422: error_response(
            "invalid key or CSR, the node does not serve the protocol, or the key is the "
            "node's own (`node_key_refused`)",
            Invalid,
            "body.wireguard.public_key: the all-zero key is not a public key",
        ),
        429: _RATE_LIMITED,
        503: error_response(
            "the chain is unreachable (Retry-After)",
            ChainUnavailable,
            "the chain RPC is unreachable; retry shortly",
        ),
    },
)
async def create_config(
    request: Request,
    principal: SubscriberPrincipal,
    session: Session,
    services: ServicesDep,
    body: Annotated[ConfigIn, Body()],
) -> ConfigOut:
    """Issues a device config on a node. WireGuard: send your public key (`wg pubkey`); the
    wg-quick text comes back with `PrivateKey = <insert your private key>` to fill in. OpenVPN:
    send a CSR; you get a certificate signed by the node's CA (valid until your subscription's
    expiry) in an inline profile whose `<key>` block you fill with your private key. `address`
    is `["<IPv4>/32", "<IPv6>/128"]`. Needs an active on-chain subscription (402 otherwise)."""
    wallet = wallet_of(principal)
    spend_config_change(request, wallet, services.settings.config_changes_per_minute)
    return await service.create_config(session, services, wallet, body)


@router.get("", responses={401: _UNAUTHORIZED, 403: _FORBIDDEN})
async def list_configs(
    principal: SubscriberPrincipal,
    session: Session,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, description="at most the max_page_size setting")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=200, pattern=CURSOR, description="`next_cursor` of the previous page"),
    ] = None,
    include_revoked: Annotated[
        bool, Query(description="also list revoked configs (status `revoked`)")
    ] = False,
) -> ConfigPage:
    """Your configs, oldest first, without their text, each with its `status`: `active`,
    `lapsed` (the subscription or certificate expired) or `revoked` (only with
    `include_revoked=true`; by default revoked ones are left out). A `lapsed` answer is
    confirmed by a fresh chain read, so a wallet that has just paid never sees it."""
    check_page_limit(limit, services.settings)
    return await service.list_configs(
        session, services, wallet_of(principal), cursor, limit, include_revoked=include_revoked
    )


@router.get(
    "/{config_id}",
    responses={
        401: _UNAUTHORIZED,
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        410: error_response(
            "revoked by the node's operator (protocol turned off, node deleted): why, and what "
            "to do next",
            ConfigRevoked,
            "this config was revoked: the node's operator turned openvpn off and the node no "
            "longer serves it (it serves: wireguard), so the device no longer connects; issue a "
            "new config (POST /v1/configs with protocol wireguard on this node, or on another "
            "node)",
        ),
    },
)
async def get_config(
    principal: SubscriberPrincipal, session: Session, services: ServicesDep, config_id: uuid.UUID
) -> ConfigOut:
    """One of your live configs with its text and `status` (`active` or `lapsed`), rebuilt
    with the node's current endpoint and keys (fetch it again after the operator changes
    them). A config you revoked is a 404; one its node's operator revoked (its protocol
    turned off, or the node deleted) is a 410 `config_revoked` saying why and what to do."""
    return await service.get_config(session, services, wallet_of(principal), config_id)


@router.delete(
    "/{config_id}",
    status_code=204,
    response_class=Response,
    responses={401: _UNAUTHORIZED, 403: _FORBIDDEN, 404: _NOT_FOUND, 429: _RATE_LIMITED},
)
async def revoke_config(
    request: Request,
    principal: SubscriberPrincipal,
    session: Session,
    settings: SettingsDep,
    config_id: uuid.UUID,
) -> None:
    """Revokes one of your configs: the node drops the peer; an OpenVPN certificate joins the
    node's CRL. Issuing and revoking share the per-wallet limit `config_changes_per_minute`
    (429 with `Retry-After` beyond it)."""
    wallet = wallet_of(principal)
    spend_config_change(request, wallet, settings.config_changes_per_minute)
    await service.revoke_config(session, wallet, config_id)
