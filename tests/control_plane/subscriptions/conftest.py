from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from control_plane.app import create_app
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.client import ChainReader
from control_plane.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No expiry cache: these tests pay and read back within seconds."""
    return settings.model_copy(update={"expiry_cache_seconds": 0.0})


def bearer(
    settings: Settings, address: str, *roles: Role, node_id: str | None = None
) -> dict[str, str]:
    principal = Principal(
        subject=address.lower(), roles=frozenset(roles or {Role.SUBSCRIBER}), node_id=node_id
    )
    return {"Authorization": f"Bearer {issue_access_token(settings, principal)}"}


@asynccontextmanager
async def serving(
    settings: Settings, chain: ChainReader
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The real application with other settings or another chain endpoint."""
    application = create_app(settings, chain=chain)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, http
