"""FastAPI dependencies that authenticate the caller and check its role.

`Authorization: Bearer <jwt>` for wallets and node agents; `Authorization: Bearer nds_...` for
API keys (see auth/api_keys.py). Every failure is a 401 without detail on which check failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from control_plane.auth import repository
from control_plane.auth.api_keys import principal_for_api_key
from control_plane.auth.node_credentials import NodeCredentials
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import VerifiedTokens
from control_plane.db import Session, unit_of_work
from control_plane.dependencies import SettingsDep
from control_plane.errors import Forbidden, Unauthorized
from control_plane.openapi import api_key_scheme, node_token_scheme, wallet_token_scheme

API_KEY_PREFIX = "nds_"


def _bearer_credential(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return credential


async def current_principal(request: Request, session: Session, settings: SettingsDep) -> Principal:
    credential = _bearer_credential(request)
    if credential.startswith(API_KEY_PREFIX):
        return await principal_for_api_key(session, settings, credential)
    return _verified_tokens(request).principal(settings, credential)


def _verified_tokens(request: Request) -> VerifiedTokens:
    """The replica's verified tokens (a wallet reuses its token for every request until it
    expires; a token is never revoked before, so a verified one need not be decoded again)."""
    tokens: VerifiedTokens | None = getattr(request.app.state, "verified_tokens", None)
    if tokens is None:
        tokens = request.app.state.verified_tokens = VerifiedTokens()
    return tokens


# The credentials each dependency below accepts, declared for the OpenAPI document (the scheme
# objects only document; `current_principal` authenticates).
_Credential = HTTPAuthorizationCredentials | None
WalletTokenScheme = Annotated[_Credential, Depends(wallet_token_scheme)]
NodeTokenScheme = Annotated[_Credential, Depends(node_token_scheme)]
ApiKeyScheme = Annotated[_Credential, Depends(api_key_scheme)]
_Authenticated = Annotated[Principal, Depends(current_principal)]


async def any_principal(
    principal: _Authenticated, _w: WalletTokenScheme, _k: ApiKeyScheme, _n: NodeTokenScheme
) -> Principal:
    """Any credential: a wallet's token, an API key or a node agent's token."""
    return principal


CurrentPrincipal = Annotated[Principal, Depends(any_principal)]


def wallet_of(principal: Principal) -> str:
    """The wallet (lower-case) behind a wallet's token or API key; a node agent's token is a
    403. The one wallet check: WalletPrincipal runs it, and routes taking a role principal call
    it."""
    if principal.node_id is not None or principal.has(Role.NODE):
        raise Forbidden("a wallet's token is needed, not a node's")
    return principal.address.lower()


async def wallet_principal(
    principal: _Authenticated, _w: WalletTokenScheme, _k: ApiKeyScheme
) -> Principal:
    """A wallet, by its token or one of its API keys; a node agent's token is a 403."""
    wallet_of(principal)
    return principal


WalletPrincipal = Annotated[Principal, Depends(wallet_principal)]


async def signed_in_wallet(
    request: Request, principal: _Authenticated, _w: WalletTokenScheme
) -> Principal:
    """A wallet that signed in with its own signature (a JWT): not a node agent, and not an
    API key, so a leaked key cannot mint keys that outlive its own revocation."""
    if principal.node_id is not None or not principal.has(Role.SUBSCRIBER):
        raise Forbidden("this needs a wallet's token (a node token cannot do this)")
    if _bearer_credential(request).startswith(API_KEY_PREFIX):
        raise Forbidden("an API key cannot do this; sign in with your wallet")
    return principal


SignedInWalletPrincipal = Annotated[Principal, Depends(signed_in_wallet)]


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A principal with `role`: node agents' tokens for `node`, wallets' tokens or API keys for
    the wallet roles."""

    def check(principal: Principal) -> Principal:
        if not principal.has(role):
            raise Forbidden(f"this needs the {role} role")
        return principal

    if role is Role.NODE:

        async def node_dependency(principal: _Authenticated, _n: NodeTokenScheme) -> Principal:
            return check(principal)

        return node_dependency

    async def wallet_dependency(
        principal: _Authenticated, _w: WalletTokenScheme, _k: ApiKeyScheme
    ) -> Principal:
        return check(principal)

    return wallet_dependency


async def _sessionless_credential(request: Request, settings: SettingsDep) -> Principal:
    """`current_principal` without the request's session, for the agent routes and routes that
    wait on the network: a token is a JWT (no table read); an API key is looked up in its own
    short transaction, so no pool connection is held while the route waits."""
    credential = _bearer_credential(request)
    if credential.startswith(API_KEY_PREFIX):
        async with unit_of_work(request.app.state.sessions) as session:
            return await principal_for_api_key(session, settings, credential)
    return _verified_tokens(request).principal(settings, credential)


async def any_principal_sessionless(
    principal: Annotated[Principal, Depends(_sessionless_credential)],
    _w: WalletTokenScheme,
    _k: ApiKeyScheme,
    _n: NodeTokenScheme,
) -> Principal:
    """`CurrentPrincipal` for a route that waits on the network (an on-demand probe): it takes
    no request session, so the route holds no pool connection while it waits."""
    return principal


SessionlessPrincipal = Annotated[Principal, Depends(any_principal_sessionless)]


async def node_agent(
    request: Request,
    principal: Annotated[Principal, Depends(_sessionless_credential)],
    _n: NodeTokenScheme,
) -> Principal:
    """A node agent's token, still backed by the chain: the node's NodeRegistry state as the
    indexer mirrors it must show the agent key that signed in, and the node not exiting or
    withdrawn. So an agent key change or an exit ends the token within one indexer run (plus
    `node_token_recheck_seconds`, how long a passed check is reused so an idle long-poll stays
    free of SQL), not at its expiry. The mirror is read for every node at once, at most once per
    that time per replica (auth/node_credentials.py), never per poll. A node the indexer has not
    seen yet passes. Takes no session from the request: a poll with nothing new opens none."""
    if not principal.has(Role.NODE) or principal.node_id is None:
        raise Forbidden(f"this needs the {Role.NODE} role")
    credentials: NodeCredentials = request.app.state.node_credentials  # built by create_app
    await credentials.ensure_fresh(request.app.state.sessions)
    refusal = credentials.refusal(principal.node_id, principal.agent)
    if refusal is not None:
        raise Unauthorized(refusal, headers={"WWW-Authenticate": "Bearer"})
    return principal


async def operator_wallet(principal: WalletPrincipal, session: Session) -> Principal:
    """The operator role, re-checked against the indexer's mirror on each request (a token's
    roles are those at sign-in)."""
    if principal.node_id is not None or not principal.has(Role.OPERATOR):
        raise Forbidden(f"this needs the {Role.OPERATOR} role")
    if not await repository.operates_active_node(session, principal.address.lower()):
        raise Forbidden("this wallet no longer operates a node Active on-chain")
    return principal


SubscriberPrincipal = Annotated[Principal, Depends(require_role(Role.SUBSCRIBER))]
OperatorPrincipal = Annotated[Principal, Depends(operator_wallet)]
NodePrincipal = Annotated[Principal, Depends(node_agent)]
