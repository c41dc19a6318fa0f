"""End to end with real tunnels: the real control plane (uvicorn, PostgreSQL, anvil with the
contracts, its jobs running), `nodus-agent run` managing a wireguard-go interface in a "node"
namespace, and subscribers' devices in "client" namespaces joined to it by veth pairs.

1. A paying subscriber gets a config and pings the node through the tunnel (time-to-tunnel is
   printed: from the subscribe receipt to the first answered ping).
2. A lapsed subscription (evm_increaseTime) or a revoked config: the peer leaves the interface
   within the expiry job's period plus one poll, and the ping fails.
3. The control plane stopped: a paying peer keeps its tunnel, a peer whose expiry passes is
   removed by the agent alone; the control plane back, the agent resyncs.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.revisions import bump_revision
from control_plane.settings import Settings
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import Lab, sh
from tests.e2e.stack import (
    ControlPlane,
    Node,
    connect_device,
    revoke,
    start_node,
    tunnel_down,
    tunnel_up,
    until,
)
from tests.support.builders import fresh_wallet, sql, subscribe
from tests.support.devchain import advance_time

pytestmark = needs_tunnels

EXPIRY_JOB_SECONDS = 1  # NODUS_EXPIRY_INTERVAL_SECONDS in stack.ControlPlane


async def test_a_paying_subscriber_reaches_the_node_through_the_tunnel(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = await start_node(lab, control_plane, settings, w3, deployment)
    health = await node.health()
    assert health["status"] == "ok"
    assert health["peers"] == 0
    assert isinstance(health["revision"], int)
    subscriber = await fresh_wallet(w3, deployment, 100 * 10**18)

    await subscribe(w3, deployment, subscriber)  # returns once the receipt is in
    paid = time.monotonic()
    device = await connect_device(lab, control_plane, node, subscriber, 1)
    await tunnel_up(device, node)
    time_to_tunnel = time.monotonic() - paid

    report(capsys, f"time-to-tunnel: {time_to_tunnel:.2f}s (subscribe receipt -> first ping)")
    assert await node.peers() == {device.public_key}
    assert (await node.health())["peers"] == 1
    status = node.status()
    assert status["peers"] == 1
    assert status["fail_static"] is False
    # The agent reports: heartbeats mark the node online, metrics carry the handshake.
    rows = await until(
        lambda: sql(
            settings,
            "SELECT rx_bytes FROM peer_metrics WHERE public_key = :key AND rx_bytes > 0",
            key=device.public_key,
        ),
        15,
        "the agent's metrics",
        step=0.5,
    )
    assert rows
    beats = await sql(
        settings, "SELECT count(*) FROM heartbeats WHERE node_id = :id", id=node.node_id
    )
    assert beats[0][0] >= 1


async def test_a_lapsed_subscription_and_a_revoked_config_lose_the_tunnel(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = await start_node(lab, control_plane, settings, w3, deployment)
    lapsing = await fresh_wallet(w3, deployment, 100 * 10**18)
    revoking = await fresh_wallet(w3, deployment, 100 * 10**18)
    await subscribe(w3, deployment, lapsing, months=1)
    await subscribe(w3, deployment, revoking, months=3)
    first = await connect_device(lab, control_plane, node, lapsing, 1)
    second = await connect_device(lab, control_plane, node, revoking, 2)
    await tunnel_up(first, node)
    await tunnel_up(second, node)

    # Revoked: gone from the interface at the next poll (the long-poll answers at once).
    await revoke(control_plane, settings, second)
    took = await until(
        lambda: _without(node, second.public_key), 5, "the revoked peer to leave the interface"
    )
    report(capsys, f"revoke -> peer removed from the interface: {took:.2f}s")
    assert await tunnel_down(second, node)
    await tunnel_up(first, node, seconds=3)  # the other subscriber is untouched

    # Lapsed: the chain's clock passes the expiry; the expiry job drops the peer.
    await advance_time(w3, 31 * 24 * 3600)
    took = await until(
        lambda: _without(node, first.public_key),
        EXPIRY_JOB_SECONDS + 5,
        "the lapsed peer to leave the interface",
    )
    report(capsys, f"lapse -> peer removed: {took:.2f}s (expiry job every {EXPIRY_JOB_SECONDS}s)")
    assert await tunnel_down(first, node)
    assert await node.peers() == set()
    assert node.status()["peers"] == 0


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Printed even when pytest captures output (the numbers are what the test is for)."""
    with capsys.disabled():
        print(f"\n[e2e] {line}")


async def _without(node: Node, key: str) -> bool:
    return key not in await node.peers()


async def test_without_the_control_plane_the_node_serves_and_still_expires_peers(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = await start_node(lab, control_plane, settings, w3, deployment)
    paying = await fresh_wallet(w3, deployment, 100 * 10**18)
    lapsing = await fresh_wallet(w3, deployment, 100 * 10**18)
    await subscribe(w3, deployment, paying)
    await subscribe(w3, deployment, lapsing)
    stays = await connect_device(lab, control_plane, node, paying, 1)
    goes = await connect_device(lab, control_plane, node, lapsing, 2)
    await tunnel_up(stays, node)
    await tunnel_up(goes, node)

    # One subscription ends in a few seconds (as if it had been paid 30 days ago): the control
    # plane's desired set now carries that expiry, and the agent has it before the outage.
    head = await w3.eth.block_number
    await until(lambda: _indexed_past(settings, head), 15, "the indexer to pass the payments")
    ends = datetime.now(UTC) + timedelta(seconds=12)
    revision = node.status()["revision"]
    await _set_expiry(settings, node.node_id, lapsing.address, ends)
    await until(lambda: node.status()["revision"] > revision, 10, "the new revision")

    await control_plane.stop()
    await until(lambda: node.status()["fail_static"], 15, "the agent to notice the outage")
    assert (await node.health())["status"] == "fail-static"
    shown = await sh(sys.executable, "-m", "node_agent", "status", "--config", str(node.config))
    assert "fail-static  YES" in shown.stdout, shown.stdout
    await tunnel_up(stays, node, seconds=3)  # paying peers keep their tunnels

    await until(lambda: _without(node, goes.public_key), 25, "the agent to drop the lapsed peer")
    late = (datetime.now(UTC) - ends).total_seconds()
    report(capsys, f"expiry -> removed by the agent alone: {late:.2f}s after expires_at")
    assert late < 2
    assert await tunnel_down(goes, node)
    await tunnel_up(stays, node, seconds=3)
    assert node.status()["fail_static"] is True

    await control_plane.start()
    revision = node.status()["revision"]
    await until(
        lambda: not node.status()["fail_static"] and node.status()["revision"] > revision,
        30,
        "the agent to resync",
    )
    assert (await node.health())["status"] == "ok"
    assert await node.peers() == {stays.public_key}
    await tunnel_up(stays, node, seconds=3)


async def _indexed_past(settings: Settings, block: int) -> bool:
    """The chain-sync job has read `block` (so it will not record those payments again)."""
    rows = await sql(settings, "SELECT next_block FROM chain_cursors")
    return bool(rows) and rows[0][0] > block


async def _set_expiry(settings: Settings, node_id: str, address: str, ends: datetime) -> None:
    """Moves a subscriber's recorded expiry and bumps the node's revision, in one transaction,
    as the indexer does when the chain says so (the chain cannot rewind its clock for us)."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE subscribers SET expires_at = :ends WHERE address = :address"),
                {"ends": ends, "address": address.lower()},
            )
            async with AsyncSession(bind=connection) as session:
                await bump_revision(session, node_id)
    finally:
        await engine.dispose()
