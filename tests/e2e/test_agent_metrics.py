"""What a node operator scrapes from `nodus-agent run` with NODUS_AGENT_METRICS_LISTEN set, end to
end: the real control plane, the agent managing wireguard-go in the node's namespace, a paying
subscriber's device pinging through the tunnel, then the node's interface deleted under the
agent (the failure an operator most needs to see)."""

from __future__ import annotations

import httpx
import pytest

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from node_agent import __version__
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import Lab, ping, sh
from tests.e2e.stack import (
    AGENT_ENV,
    ControlPlane,
    connect_device,
    free_tcp_port,
    start_node,
    tunnel_up,
    until,
)
from tests.support.builders import fresh_wallet, subscribe
from tests.support.scrape import Samples, scrape, value

pytestmark = needs_tunnels


async def test_an_operator_scrapes_peers_handshakes_traffic_and_failures(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_tcp_port()
    monkeypatch.setitem(AGENT_ENV, "NODUS_AGENT_METRICS_LISTEN", f"127.0.0.1:{port}")
    node = await start_node(lab, control_plane, settings, w3, deployment)

    empty = await scrape(port)
    assert value(empty, "nodus_agent_info", node=node.node_id.lower(), version=__version__) == 1
    assert value(empty, "nodus_agent_peers_desired", protocol="wireguard") == 0
    assert value(empty, "nodus_agent_control_plane_up") == 1
    assert value(empty, "nodus_agent_revision_applied") == value(
        empty, "nodus_agent_revision_desired"
    )
    # The health port does not serve the metrics (nor the metrics port health).
    async with httpx.AsyncClient() as http:
        health = await http.get(f"http://127.0.0.1:{node.health_port}/metrics", timeout=5)
        assert health.status_code == 404
        assert (await http.get(f"http://127.0.0.1:{port}/health", timeout=5)).status_code == 404

    subscriber = await fresh_wallet(w3, deployment, 100 * 10**18)
    await subscribe(w3, deployment, subscriber)
    device = await connect_device(lab, control_plane, node, subscriber, 1)
    await tunnel_up(device, node)
    assert await ping(device.namespace, node.tunnel_ipv4, count=3, wait=1)

    samples: Samples = {}

    async def scanned_after_the_ping() -> bool:
        nonlocal samples
        samples = await scrape(port)
        return (
            value(samples, "nodus_agent_peer_bytes", direction="rx") > 0
            and value(samples, "nodus_agent_peer_bytes", direction="tx") > 0
            and value(samples, "nodus_agent_handshake_age_seconds_count") > 0
        )

    # A heartbeat scan (every 2 s here) reads `wg show dump` after the handshake and the ping.
    await until(scanned_after_the_ping, 20, "a scan to see the handshake and the bytes", step=0.5)
    assert value(samples, "nodus_agent_peers_desired", protocol="wireguard") == 1
    assert value(samples, "nodus_agent_peers_applied", protocol="wireguard") == 1
    assert value(samples, "nodus_agent_peers_desired", protocol="openvpn") == 0
    desired = value(samples, "nodus_agent_revision_desired")
    assert desired >= 1
    assert value(samples, "nodus_agent_revision_applied") == desired
    assert value(samples, "nodus_agent_control_plane_up") == 1
    assert value(samples, "nodus_agent_apply_seconds_count", protocol="wireguard") > 0
    # The handshake is fresh: every observation is inside WireGuard's 2-minute rekey window.
    count = value(samples, "nodus_agent_handshake_age_seconds_count")
    assert value(samples, "nodus_agent_handshake_age_seconds_bucket", le="120.0") == count
    assert value(samples, "nodus_agent_apply_failures_total", reason="command_failed") == 0

    # The interface vanishes under the agent: its next reconcile (expiry.check_seconds = 5 s
    # here) fails, and the operator sees why.
    await sh("ip", "-n", node.namespace, "link", "del", node.interface)

    async def failure_counted() -> bool:
        nonlocal samples
        samples = await scrape(port)
        return value(samples, "nodus_agent_apply_failures_total", reason="command_failed") >= 1

    await until(failure_counted, 20, "the failed reconcile to be counted", step=0.5)
    assert value(samples, "nodus_agent_apply_failures_total", reason="internal") == 0
    assert value(samples, "nodus_agent_control_plane_up") == 1  # the control plane is fine
