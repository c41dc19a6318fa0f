"""Session fixtures: one real anvil with the real contracts deployed by scripts/deploy."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from web3 import AsyncWeb3

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.migrate import upgrade
from control_plane.models import Base
from control_plane.settings import Settings
from tests import kinds
from tests.database import admin_database_url, scratch_database
from tests.support.devchain import Anvil, deploy, running_anvil


def pytest_configure(config: pytest.Config) -> None:
    kinds.register(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kinds.mark(items, Path(__file__).parent)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with running_anvil() as node:
        yield node


@pytest.fixture(scope="session")
def deployments_dir(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where scripts/deploy wrote this session's deployments file."""
    out_dir: Path = tmp_path_factory.mktemp("deployments")
    deploy(anvil.rpc_url, out_dir)
    return out_dir


@pytest.fixture(scope="session")
def deployment(deployments_dir: Path) -> Deployment:
    return Deployment.for_chain(31337, deployments_dir)


@pytest.fixture
async def w3(anvil: Anvil) -> AsyncIterator[Web3Client]:
    client = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 30}))
    yield client
    await client.provider.disconnect()


@pytest.fixture(autouse=True)
async def isolated_chain(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test that touches the chain starts from the freshly deployed state: anvil snapshots
    before the test and reverts after, so tests cannot see each other's transactions."""
    if "deployment" not in request.fixturenames:
        yield
        return
    anvil: Anvil = request.getfixturevalue("anvil")
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil.rpc_url))
    snapshot = (await w3.provider.make_request("evm_snapshot", []))["result"]
    yield
    await w3.provider.make_request("evm_revert", [snapshot])
    # A revert also winds anvil's clock back by the test's duration; a real chain's clock keeps
    # up with the wall clock, and the accept job judges windows by the later of the two, so the
    # next test's chain must not lag behind it.
    head = await w3.eth.get_block("latest")
    if head["timestamp"] < time.time():
        await w3.provider.make_request("evm_setTime", [int(time.time())])
    await w3.provider.disconnect()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this session, at the latest migration."""
    with admin_database_url() as admin_url, scratch_database(admin_url) as url:
        asyncio.run(upgrade(url))
        yield url


@pytest.fixture
async def clean_database(database_url: str) -> AsyncIterator[str]:
    """The session's database, emptied after the test (every table, in one statement)."""
    yield database_url
    engine = create_async_engine(database_url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def settings(clean_database: str, anvil: Anvil, deployments_dir: Path) -> Settings:
    return Settings(
        database_url=clean_database,
        rpc_url=anvil.rpc_url,
        chain_id=31337,
        deployments_dir=deployments_dir,
        public_url="http://testserver",
        jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        api_key_secret=SecretStr(secrets.token_urlsafe(32)),
        data_key=SecretStr(secrets.token_urlsafe(32)),
        run_jobs=False,
        # Nodes in tests serve on this machine (127.0.0.1) or use documentation addresses.
        allow_private_endpoints=True,
        # Tests move anvil's clock and decide right after: read the head for every decision.
        chain_clock_seconds=0,
    )


@pytest.fixture
async def app(settings: Settings, anvil: Anvil, deployment: Deployment) -> AsyncIterator[FastAPI]:
    """The real application (real database, real chain), its lifespan running."""
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(settings, chain=chain)
    async with LifespanManager(application):
        yield application
    await chain.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
