"""Sign-in routes: wallets (SIWE), node agents (challenge signed with the on-chain agent key),
who-am-I, and API keys. The unauthenticated routes are rate limited per client IP
(auth/rate_limit.py)."""

from __future__ import annotations

import ipaddress
import uuid

from fastapi import APIRouter, Depends, Request, Response, status

from control_plane.auth import api_keys, service
from control_plane.auth.dependencies import (
    CurrentPrincipal,
    SignedInWalletPrincipal,
    SubscriberPrincipal,
)
from control_plane.auth.rate_limit import rate_limit
from control_plane.auth.schemas import (
    AgentChallengeIn,
    AgentChallengeOut,
    AgentLoginIn,
    AgentLoginOut,
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    ApiKeyList,
    LoginIn,
    LoginOut,
    MeOut,
    NonceOut,
    WhoAmIOut,
)
from control_plane.db import Session
from control_plane.dependencies import ChainDep, SettingsDep
from control_plane.errors import error_response

router = APIRouter()


Chain = ChainDep


_RATE_LIMITED = error_response(
    "too many requests from this client (30 a minute per route, counted per replica); "
    "see Retry-After"
)
_UNAUTHORIZED = error_response("missing, invalid, expired or revoked credentials")


@router.get(
    "/auth/nonce",
    tags=["auth"],
    dependencies=[Depends(rate_limit("auth_nonce"))],
    responses={429: _RATE_LIMITED},
)
async def get_nonce(session: Session, settings: SettingsDep) -> NonceOut:
    """A single-use nonce (valid for 5 minutes) and the fields of the EIP-4361 message to sign
    with it: `domain`, `uri`, `chain_id` and a suggested `statement`."""
    return await service.issue_nonce(session, settings)


@router.post(
    "/auth/login",
    tags=["auth"],
    dependencies=[Depends(rate_limit("auth_login"))],
    responses={
        401: error_response("the message, its signature, its nonce or its times did not check out"),
        422: error_response("malformed body"),
        429: _RATE_LIMITED,
    },
)
async def login(body: LoginIn, session: Session, settings: SettingsDep) -> LoginOut:
    """Sign-In with Ethereum: send the EIP-4361 message built from GET /v1/auth/nonce and the
    wallet's personal_sign signature of it. Checks the signature (a wallet key; contract wallets
    are not supported), domain, URI, chain ID, issued-at / expiration / not-before, and consumes
    the nonce. Answers a short-lived bearer token with the wallet's roles."""
    return await service.sign_in(session, settings, body.message, body.signature)


@router.get("/auth/me", tags=["auth"], responses={401: _UNAUTHORIZED})
async def me(principal: CurrentPrincipal) -> MeOut:
    """Who the credential (token or API key) says you are."""
    return MeOut(
        subject=principal.subject, roles=sorted(principal.roles), node_id=principal.node_id
    )


@router.get("/whoami", tags=["auth"])
async def whoami(request: Request, response: Response) -> WhoAmIOut:
    """The address you connect from, as this server sees it: behind a proxy listed in
    NODUS_TRUSTED_PROXIES, the right-most untrusted `X-Forwarded-For` address, exactly as the
    rate limits and logs see it. Public, not rate limited, touches no database: `nodus up`
    asks it through a fresh tunnel to check that traffic leaves through the node."""
    response.headers["cache-control"] = "no-store"
    host = request.client.host if request.client is not None else None
    return WhoAmIOut(address=_ip_or_none(host))


def _ip_or_none(host: str | None) -> str | None:
    try:
        return None if host is None else str(ipaddress.ip_address(host))
    except ValueError:
        return None


@router.post(
    "/agent/challenge",
    tags=["agent"],
    dependencies=[Depends(rate_limit("agent_challenge"))],
    responses={
        404: error_response("no node with this id was ever registered on-chain"),
        422: error_response("malformed node id"),
        429: _RATE_LIMITED,
        503: error_response("the chain is unreachable; see Retry-After"),
    },
)
async def agent_challenge(
    body: AgentChallengeIn, session: Session, settings: SettingsDep, chain: Chain
) -> AgentChallengeOut:
    """A challenge for the node's agent to sign with its on-chain agent key (single use,
    5 minutes). Then POST /v1/agent/login."""
    return await service.open_agent_challenge(session, settings, chain, body.node_id)


@router.post(
    "/agent/login",
    tags=["agent"],
    dependencies=[Depends(rate_limit("agent_login"))],
    responses={
        401: error_response("no open challenge, or not signed by the node's on-chain agent key"),
        403: error_response("the node is not Active on-chain"),
        422: error_response("malformed body"),
        429: _RATE_LIMITED,
        503: error_response("the chain is unreachable; see Retry-After"),
    },
)
async def agent_login(
    body: AgentLoginIn, session: Session, settings: SettingsDep, chain: Chain
) -> AgentLoginOut:
    """Exchanges the personal_sign signature of the node's open challenge, made with the agent
    key NodeRegistry holds for the node, for a token scoped to that node."""
    return await service.agent_sign_in(session, settings, chain, body.node_id, body.signature)


@router.post(
    "/api-keys",
    tags=["api-keys"],
    status_code=status.HTTP_201_CREATED,
    responses={
        401: _UNAUTHORIZED,
        403: error_response("not a wallet's token (node tokens and API keys cannot create keys)"),
        409: error_response("too many live keys"),
    },
)
async def create_api_key(
    body: ApiKeyCreateIn,
    principal: SignedInWalletPrincipal,
    session: Session,
    settings: SettingsDep,
) -> ApiKeyCreatedOut:
    """A new API key for automation, acting as you. The `key` is in this answer only: the
    server keeps just a keyed hash of it."""
    return await api_keys.create_api_key(session, settings, principal.address, body.name)


@router.get(
    "/api-keys",
    tags=["api-keys"],
    responses={401: _UNAUTHORIZED, 403: error_response("not a wallet's credential")},
)
async def list_api_keys(principal: SubscriberPrincipal, session: Session) -> ApiKeyList:
    """Your live API keys (never their secrets)."""
    return await api_keys.list_api_keys(session, principal.address)


@router.delete(
    "/api-keys/{key_id}",
    tags=["api-keys"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        401: _UNAUTHORIZED,
        403: error_response("not a wallet's credential"),
        404: error_response("you have no live key with this id"),
    },
)
async def revoke_api_key(
    key_id: uuid.UUID, principal: SubscriberPrincipal, session: Session
) -> None:
    """Revokes one of your keys, at once."""
    await api_keys.revoke_api_key(session, principal.address, key_id)
