"""A node from zero, by README's "Run a node" with the real command-line tools, then probed.

The subscriber lab (tests/e2e/subscriber_lab.py) registers its node the operator's way
(tests/e2e/operator_cli.py): a fresh wallet funded with NDS, `nodus-agent init --operator ...
--json` on the node host, the `nodus node register ...` line it printed run as printed, and
`nodus-agent pools`; then `nodus-agent run` inside the node's namespace makes the WireGuard
interface (wireguard-go), forwarding and NAT, and answers probes on its endpoint.

1. The node is Active and online in `nodus node status`, measured up by the control plane's
   own probe round in GET /v1/nodes/{id}/health, and a paying subscriber's peer appears on its
   interface.
2. The probers refuse a private endpoint by default (`private_address`, and the fix names the
   setting); a deployment that sets NODUS_PROBER_ALLOW_PRIVATE_TARGETS=true probes it, and the
   verdict is up with reason `ok`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.auth.conftest import bearer
from tests.e2e.conftest import needs_nft_and_openvpn, needs_tunnels
from tests.e2e.lab import wg_peers
from tests.e2e.operator_cli import WalletHost
from tests.e2e.stack import probing, until
from tests.e2e.subscriber_lab import NODE, WG_PORT, SubscriberLab
from tests.support.builders import paying_subscriber, wg_keys

pytestmark = [
    needs_tunnels,
    needs_nft_and_openvpn,
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A dev or test deployment: its nodes live on private addresses, and it says it probes them."""
    return probing(settings, allow_private=True)


def wallet_host(world: SubscriberLab) -> WalletHost:
    return WalletHost.of(
        world.control_plane.settings, world.host_api_url, world.lab.directory / "viewer"
    )


async def node_status(world: SubscriberLab) -> dict[str, Any]:
    shown = await wallet_host(world).nodus("node", "status", world.node_id, "--json", key=None)
    status: dict[str, Any] = json.loads(shown)
    return status


async def probe_now(world: SubscriberLab, operator: LocalAccount) -> dict[str, Any]:
    """POST /v1/nodes/{id}/probe, signed in (SIWE) as the node's operator."""
    async with httpx.AsyncClient(base_url=world.host_api_url, timeout=30) as http:
        headers = await bearer(http, operator)
        response = await http.post(f"/v1/nodes/{world.node_id}/probe", headers=headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


async def test_a_node_from_zero_is_active_online_probed_up_and_serves_a_subscriber(
    subscriber_world: SubscriberLab, w3: Web3Client, deployment: Deployment
) -> None:
    world = subscriber_world
    assert "nodus-agent run" in world.operator.registered  # register says what comes next

    status = await node_status(world)
    assert status["chain"]["status"] == "active"
    assert status["chain"]["operator"] == world.operator.operator.address
    assert status["chain"]["agent"] == world.operator.init["agent_address"]
    assert status["api"]["endpoint"] == f"{NODE}:{WG_PORT}"
    assert status["api"]["wireguard_public_key"] == world.operator.init["wireguard_public_key"]

    async def online_and_up() -> bool:
        shown = await node_status(world)
        summary = (shown["health"] or {}).get("summary", {})
        return bool(shown["api"]["online"]) and summary.get("verdict") == "up"

    await until(online_and_up, 60, "the node online and probed up", step=1)
    async with httpx.AsyncClient(base_url=world.host_api_url) as http:
        health = (await http.get(f"/v1/nodes/{world.node_id}/health")).json()
    assert health["summary"]["reason"] == "ok", health
    assert health["rounds"][0]["verdict"] == "up", health

    subscriber = await paying_subscriber(w3, deployment)
    keys = wg_keys()
    async with httpx.AsyncClient(base_url=world.host_api_url, timeout=30) as http:
        response = await http.post(
            "/v1/configs",
            json={"node_id": world.node_id, "protocol": "wireguard", "public_key": keys.public},
            headers=await bearer(http, subscriber),
        )
        assert response.status_code == 201, response.text

    async def peer_on_node() -> bool:
        return keys.public in await wg_peers(world.node, world.node_interface)

    await until(peer_on_node, 30, "the subscriber's peer on the node's interface")


async def test_private_endpoints_are_probed_only_where_the_deployment_allows_it(
    subscriber_world: SubscriberLab,
) -> None:
    world = subscriber_world
    operator = world.operator.operator

    allowed = await probe_now(world, operator)

    assert allowed["verdict"] == "up", allowed
    assert allowed["reason"] == "ok"
    assert allowed["answered"] >= 1

    # The production default: the same node, the same address, refused with its reason.
    control_plane = world.control_plane
    await control_plane.stop()
    control_plane.settings = probing(control_plane.settings, allow_private=False)
    await control_plane.start()

    refused = await probe_now(world, operator)

    assert refused["verdict"] == "down", refused
    assert refused["reason"] == "private_address"
    assert "NODUS_PROBER_ALLOW_PRIVATE_TARGETS" in refused["fix"]
    assert refused["answered"] == 0
