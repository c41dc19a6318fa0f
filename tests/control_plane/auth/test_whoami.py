"""GET /v1/whoami answers the client address the server sees, with NODUS_TRUSTED_PROXIES
applied exactly as the rate limits apply it; public, never rate limited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from control_plane.app import create_app
from control_plane.auth.rate_limit import REQUESTS_PER_MINUTE
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.settings import Settings
from tests.support.devchain import Anvil

PROXY = "10.0.0.1"


@pytest.fixture
async def proxied_app(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[FastAPI]:
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    trusted = settings.model_copy(update={"trusted_proxies": [PROXY, "2001:db8::/64"]})
    application = create_app(trusted, chain=chain)
    async with LifespanManager(application):
        yield application
    await chain.aclose()


async def _whoami(app: FastAPI, peer: str, forwarded_for: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 40_000))
    headers = {} if forwarded_for is None else {"x-forwarded-for": forwarded_for}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get("/v1/whoami", headers=headers)


async def test_the_peer_is_the_client_and_a_written_header_changes_nothing(app: FastAPI) -> None:
    response = await _whoami(app, "198.51.100.23", forwarded_for="203.0.113.9")

    assert response.status_code == 200
    assert response.json() == {"address": "198.51.100.23"}
    assert response.headers["cache-control"] == "no-store"
    v6 = await _whoami(app, "2001:DB8:0:0::7")
    assert v6.json() == {"address": "2001:db8::7"}


async def test_behind_a_trusted_proxy_the_address_the_proxy_saw(proxied_app: FastAPI) -> None:
    # The client wrote 198.18.0.1 itself; the proxy appended the address it saw.
    seen = await _whoami(proxied_app, PROXY, forwarded_for="198.18.0.1, 10.8.0.2")
    assert seen.json() == {"address": "10.8.0.2"}
    chained = await _whoami(proxied_app, "2001:db8::5", forwarded_for="10.8.0.3, 2001:db8::9")
    assert chained.json() == {"address": "10.8.0.3"}
    # An untrusted peer's header is ignored.
    direct = await _whoami(proxied_app, "192.0.2.4", forwarded_for="10.8.0.2")
    assert direct.json() == {"address": "192.0.2.4"}


async def test_it_is_public_and_never_rate_limited(client: httpx.AsyncClient) -> None:
    statuses = {
        (await client.get("/v1/whoami")).status_code for _ in range(2 * REQUESTS_PER_MINUTE)
    }
    assert statuses == {200}
