"""Fixtures of the reward posting tests: the sender's (tests/control_plane/chain/support.py),
and the app with the claims router."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.rewards.claims_router import router as claims_router
from control_plane.settings import Settings
from tests.control_plane.chain.support import make_sender, oracle_settings, sender, services
from tests.support.devchain import Anvil

__all__ = ["make_sender", "oracle_settings", "sender", "services"]


@pytest.fixture
async def app(settings: Settings, anvil: Anvil, deployment: Deployment) -> AsyncIterator[FastAPI]:
    """The real application with the claims router (included here until app.py includes it)."""
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(settings, chain=chain)
    paths = {getattr(route, "path", None) for route in application.routes}
    if "/v1/rewards/{address}" not in paths:
        application.include_router(claims_router, prefix="/v1")
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
