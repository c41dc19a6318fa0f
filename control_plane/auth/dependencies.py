"""FastAPI dependencies that authenticate the caller and check its role.

`Authorization: Bearer <jwt>` for wallets and node agents; `Authorization: Bearer nds_...` for
API keys (see auth/api_keys.py). Every failure is a 401 without detail on which check failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from control_plane.auth.api_keys import principal_for_api_key
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import decode_access_token
from control_plane.db import Session
from control_plane.errors import Forbidden, Unauthorized
from control_plane.openapi import api_key_scheme, node_token_scheme, wallet_token_scheme
from control_plane.settings import Settings

API_KEY_PREFIX = "nds_"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


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
    return decode_access_token(settings, credential)


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


async def wallet_principal(
    principal: _Authenticated, _w: WalletTokenScheme, _k: ApiKeyScheme
) -> Principal:
    """A wallet, by its token or one of its API keys; a node agent's token is a 403."""
    if principal.node_id is not None or principal.has(Role.NODE):
        raise Forbidden("a wallet's token is needed, not a node's")
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


SubscriberPrincipal = Annotated[Principal, Depends(require_role(Role.SUBSCRIBER))]
OperatorPrincipal = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
NodePrincipal = Annotated[Principal, Depends(require_role(Role.NODE))]
