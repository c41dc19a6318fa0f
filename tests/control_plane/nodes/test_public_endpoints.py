"""Issue 9, finding 4: outside dev mode a node's endpoint must be a public address. An operator
who registers `127.0.0.1`, `::127.0.0.1`, the metadata service through NAT64 or 6to4, or a
private network turns the probers into a scanner of the control plane's own network: refused
with 422 `endpoint_not_public` on POST and PATCH."""

from __future__ import annotations

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from control_plane.settings import Settings
from tests.support.builders import node_body, post_node, wallet_headers

REFUSED = [
    "127.0.0.1:51820",
    "10.0.0.7:51820",
    "169.254.169.254:80",
    "[::1]:51820",
    "[::127.0.0.1]:51820",
    "[::ffff:127.0.0.1]:51820",
    "[64:ff9b::a9fe:a9fe]:80",
    "[2002:a9fe:a9fe::1]:80",
    "[fd00::1]:51820",
    "localhost:51820",
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The production default: NODUS_ALLOW_PRIVATE_ENDPOINTS unset."""
    return settings.model_copy(update={"allow_private_endpoints": False})


async def test_non_public_endpoints_are_refused_on_registration_and_update(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    for endpoint in REFUSED:
        body = node_body(staked_node, protocols=("wireguard",), endpoint=endpoint)
        response = await post_node(client, settings, operator, body)
        assert response.status_code == 422, (endpoint, response.text)
        assert response.json()["error"]["code"] == "endpoint_not_public", endpoint

    body = node_body(staked_node, protocols=("wireguard",), endpoint="8.8.8.8:51820")
    registered = await post_node(client, settings, operator, body)
    assert registered.status_code == 201, registered.text

    headers = wallet_headers(settings, operator.address)
    for endpoint in ("[64:ff9b::7f00:1]:51820", "[2002:a00:1::1]:51820"):
        patched = await client.patch(
            f"/v1/nodes/{staked_node}", json={"endpoint": endpoint}, headers=headers
        )
        assert patched.status_code == 422, (endpoint, patched.text)
        assert patched.json()["error"]["code"] == "endpoint_not_public"
    moved = await client.patch(
        f"/v1/nodes/{staked_node}", json={"endpoint": "vpn.example.net:51820"}, headers=headers
    )
    assert moved.status_code == 200, moved.text
    # A name is checked where it is resolved: by the prober, before it connects.
    assert moved.json()["endpoint"] == "vpn.example.net:51820"
