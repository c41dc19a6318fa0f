"""Fixtures for the configs API tests: a settings override (`@pytest.mark.device_limit(n)`), a
node registered on-chain and here, paying subscribers, and a second replica of the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.configs.strict_config import parse_config
from tests.support.builders import (
    NDS,
    fresh_wallet,
    node_body,
    paying_subscriber,
    post_node,
    register_on_chain,
)
from tests.support.devchain import Anvil


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "device_limit(n): run the test with settings.device_limit = n"
    )
    config.addinivalue_line(
        "markers",
        "config_changes_per_minute(n): run the test with settings.config_changes_per_minute = n",
    )
    config.addinivalue_line(
        "markers",
        "database_statement_timeout_seconds(n): run the test with that statement timeout",
    )


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The session's settings, with `device_limit` and `config_changes_per_minute` from the
    test's markers if it has them."""
    update: dict[str, int] = {}
    for name in (
        "device_limit",
        "config_changes_per_minute",
        "database_statement_timeout_seconds",
    ):
        marker = request.node.get_closest_marker(name)
        if marker is not None:
            update[name] = int(marker.args[0])
    return settings.model_copy(update=update)


async def check_served_config(response: httpx.Response) -> None:
    """Every config the API serves in these tests must pass the strict parsers."""
    if not response.request.url.path.startswith("/v1/configs") or response.status_code >= 300:
        return
    await response.aread()
    if response.status_code == 204 or not response.content:
        return
    body = response.json()
    if isinstance(body, dict) and "config" in body:
        parse_config(body["protocol"], body["config"])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The application's client; each config it receives is checked by the strict parsers."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        event_hooks={"response": [check_served_config]},
    ) as http:
        yield http


@pytest.fixture
async def operator(w3: Web3Client, deployment: Deployment) -> LocalAccount:
    return await fresh_wallet(w3, deployment, 1_000 * NDS)


@pytest.fixture
async def node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> str:
    """A node serving WireGuard (127.0.0.1:51820) and OpenVPN (port 1194), Active on-chain and
    registered here with the default pools."""
    node_id = await register_on_chain(w3, deployment, operator)
    body = node_body(node_id, endpoint="127.0.0.1:51820")
    response = await post_node(client, settings, operator, body)
    assert response.status_code == 201, response.text
    return node_id


@pytest.fixture
async def subscriber(w3: Web3Client, deployment: Deployment) -> LocalAccount:
    """A fresh wallet that paid for one period."""
    return await paying_subscriber(w3, deployment)


@pytest.fixture
async def second_app(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[FastAPI]:
    """Another replica: its own engine, chain reader and feed; the same database."""
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(settings, chain=chain)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def second_client(second_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=second_app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        event_hooks={"response": [check_served_config]},
    ) as http:
        yield http
