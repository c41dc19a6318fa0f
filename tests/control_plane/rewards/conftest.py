"""Fixtures for the scoring tests: a session factory on the test database, the real app with the
scoring routes, and a chain reader on anvil."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.settings import Settings
from tests.support.devchain import Anvil


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(settings.database_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def chain(anvil: Anvil, deployment: Deployment) -> AsyncIterator[Web3ChainReader]:
    reader = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    yield reader
    await reader.w3.provider.disconnect()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app (its scoring and prober routes included)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
