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


async def current_principal(request: Request, session: Session, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if credential.startswith(API_KEY_PREFIX):
        return await principal_for_api_key(session, settings, credential)
    return decode_access_token(settings, credential)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has(role):
            raise Forbidden(f"this needs the {role} role")
        return principal

    return dependency


SubscriberPrincipal = Annotated[Principal, Depends(require_role(Role.SUBSCRIBER))]
OperatorPrincipal = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
NodePrincipal = Annotated[Principal, Depends(require_role(Role.NODE))]
