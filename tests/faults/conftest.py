"""The fault suite's fixtures: each test gets its own PostgreSQL cluster (tests/support/
pgcluster.py) so it can stop or freeze it, and the real application on it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.migrate import upgrade
from control_plane.settings import Settings
from tests.support.devchain import Anvil
from tests.support.pgcluster import PostgresCluster, postgres_cluster


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster() as owned:
        yield owned


@pytest.fixture
def cluster_database_url(cluster: PostgresCluster) -> str:
    async def create() -> None:
        connection = await asyncpg.connect(cluster.admin_url)
        try:
            await connection.execute('CREATE DATABASE "nodus"')
        finally:
            await connection.close()

    asyncio.run(create())
    url = cluster.url("nodus")
    asyncio.run(upgrade(url))
    return url


def fault_settings(database_url: str, rpc_url: str, deployments_dir: Path) -> Settings:
    """Settings with short bounds, so each fault is answered quickly."""
    return Settings(
        database_url=database_url,
        rpc_url=rpc_url,
        chain_id=31337,
        deployments_dir=deployments_dir,
        public_url="http://testserver",
        jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        api_key_secret=SecretStr(secrets.token_urlsafe(32)),
        data_key=SecretStr(secrets.token_urlsafe(32)),
        run_jobs=False,
        allow_private_endpoints=True,
        database_connect_timeout_seconds=1.0,
        database_pool_timeout_seconds=1.0,
        database_statement_timeout_seconds=1.0,
        readyz_timeout_seconds=1.0,
    )


@pytest.fixture
def cluster_settings(cluster_database_url: str, anvil: Anvil, deployments_dir: Path) -> Settings:
    return fault_settings(cluster_database_url, anvil.rpc_url, deployments_dir)


@pytest.fixture
async def cluster_app(
    cluster_settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[FastAPI]:
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(cluster_settings, chain=chain)
    async with LifespanManager(application, shutdown_timeout=30):
        yield application
    await chain.aclose()


def client_for(app: FastAPI, ip: str = "198.51.100.1") -> httpx.AsyncClient:
    """A client of `app` from `ip` (distinct IPs keep the per-IP rate limits out of the way)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
