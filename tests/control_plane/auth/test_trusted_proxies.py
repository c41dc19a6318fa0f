"""X-Forwarded-For is believed only from NODUS_TRUSTED_PROXIES (empty by default), and then
only its right-most untrusted address: a client that writes the header itself can neither
escape the sign-in limit nor choose the address the service sees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from control_plane.app import create_app
from control_plane.auth.rate_limit import REQUESTS_PER_MINUTE
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.proxies import client_address, parse_trusted_proxies
from control_plane.settings import Settings
from tests.support.devchain import Anvil

# httpx's ASGI transport connects from 127.0.0.1: in the proxied test, that is "nginx".
PROXY = "127.0.0.1"


@pytest.fixture
async def proxied_client(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[httpx.AsyncClient]:
    """The application behind a trusted proxy at 127.0.0.1."""
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(settings.model_copy(update={"trusted_proxies": [PROXY]}), chain=chain)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    await chain.aclose()


async def test_without_trusted_proxies_a_spoofed_header_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    statuses = [
        (
            await client.get(
                "/v1/auth/nonce", headers={"x-forwarded-for": f"198.18.{i // 250}.{i % 250 + 1}"}
            )
        ).status_code
        for i in range(REQUESTS_PER_MINUTE + 1)
    ]

    assert statuses == [200] * REQUESTS_PER_MINUTE + [429]


async def test_behind_a_trusted_proxy_the_client_cannot_choose_its_address(
    proxied_client: httpx.AsyncClient,
) -> None:
    # The client writes a new address each time; the proxy appends the one it saw.
    statuses = [
        (
            await proxied_client.get(
                "/v1/auth/nonce",
                headers={"x-forwarded-for": f"198.18.0.{i + 1}, 203.0.113.5"},
            )
        ).status_code
        for i in range(REQUESTS_PER_MINUTE + 1)
    ]
    assert statuses == [200] * REQUESTS_PER_MINUTE + [429]
    # Another client behind the same proxy has its own bucket.
    other = await proxied_client.get("/v1/auth/nonce", headers={"x-forwarded-for": "203.0.113.6"})
    assert other.status_code == 200


def test_the_right_most_untrusted_address_is_the_client() -> None:
    trusted = parse_trusted_proxies(["10.0.0.0/8", "2001:db8::1"])

    assert client_address("10.0.0.2", "1.2.3.4, 203.0.113.5", trusted) == "203.0.113.5"
    assert client_address("10.0.0.2", "203.0.113.5, 10.9.9.9", trusted) == "203.0.113.5"
    assert client_address("2001:db8::1", "2001:db8:5::7", trusted) == "2001:db8:5::7"
    # From an untrusted peer, the header is ignored.
    assert client_address("198.18.0.1", "203.0.113.5", trusted) == "198.18.0.1"
    # Garbage is never taken: the last address a trusted proxy wrote stands.
    assert client_address("10.0.0.2", "203.0.113.5\n, evil", trusted) == "10.0.0.2"
    assert client_address("10.0.0.2", "", trusted) == "10.0.0.2"
    with pytest.raises(ValueError, match="trusted_proxies"):
        parse_trusted_proxies(["nginx"])
