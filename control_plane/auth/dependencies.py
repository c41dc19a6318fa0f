"""FastAPI dependencies that authenticate the caller and check its role.

`Authorization: Bearer <jwt>` for wallets and node agents; `Authorization: Bearer nds_...` for
API keys (see auth/api_keys.py). Every failure is a 401 without detail on which check failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from control_plane.auth.api_keys import principal_for_api_key
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import decode_access_token
from control_plane.db import Session
from control_plane.errors import Forbidden, Unauthorized
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


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def signed_in_wallet(request: Request, principal: CurrentPrincipal) -> Principal:
    """A wallet that signed in with its own signature (a JWT): not a node agent, and not an
    API key, so a leaked key cannot mint keys that outlive its own revocation."""
    if principal.node_id is not None or not principal.has(Role.SUBSCRIBER):
        raise Forbidden("this needs a wallet's token (a node token cannot do this)")
    if _bearer_credential(request).startswith(API_KEY_PREFIX):
        raise Forbidden("an API key cannot do this; sign in with your wallet")
    return principal


SignedInWalletPrincipal = Annotated[Principal, Depends(signed_in_wallet)]


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has(role):
            raise Forbidden(f"this needs the {role} role")
        return principal

    return dependency


SubscriberPrincipal = Annotated[Principal, Depends(require_role(Role.SUBSCRIBER))]
OperatorPrincipal = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
NodePrincipal = Annotated[Principal, Depends(require_role(Role.NODE))]
