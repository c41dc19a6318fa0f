"""R2: the chain RPC frozen (the real anvil, SIGSTOP) under a served control plane whose mirror
knows a paid subscriber and an Active node. During the outage `/healthz` stays up, `/readyz` says
503 with the chain named, and the subscriber keeps getting and revoking configs (the request
path reads only PostgreSQL); when the chain comes back, `/readyz` is 200 again within 10 s (the
issue's bound).

The outage lasts OUTAGE_SECONDS (20 s, not the issue's 60 s: nothing in the path counts time
while the chain is away, and the breaker is open from the first seconds on, so a longer outage
only repeats the same answers)."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
from fastapi import FastAPI

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.indexer.sync import sync_chain
from control_plane.jobs import Services, run_exclusive
from control_plane.settings import Settings
from tests.support.builders import (
    NDS,
    fresh_wallet,
    node_body,
    paying_subscriber,
    post_node,
    register_on_chain,
    wallet_headers,
    wg_keys,
)
from tests.support.devchain import Anvil
from tests.support.processes import signal_tree

OUTAGE_SECONDS = 20.0
RECOVERY_BOUND_SECONDS = 10.0
PACE_SECONDS = 0.25


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """As deployed: the chain's clock refreshed in the background (the suite's default, 0,
    reads the head in line on every decision, for tests that move anvil's clock); and room for
    the loop's config changes in the per-wallet limit."""
    return settings.model_copy(
        update={"chain_clock_seconds": 1.0, "config_changes_per_minute": 10_000}
    )


async def test_chain_frozen_issuance_goes_on_readyz_says_why_and_recovers_within_10s(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    anvil: Anvil,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    node_id = await register_on_chain(w3, deployment, operator)
    registered = await post_node(client, settings, operator, node_body(node_id))
    assert registered.status_code == 201, registered.text
    subscriber = await paying_subscriber(w3, deployment)
    services: Services = app.state.services
    assert await run_exclusive(services, "chain_sync", sync_chain)  # the mirror knows both
    assert (await client.get("/readyz")).status_code == 200
    headers = wallet_headers(settings, subscriber.address)

    issued, slowest = 0, 0.0
    signal_tree(anvil.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        while time.monotonic() - started < OUTAGE_SECONDS:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": True, "chain": False}
            asked = time.monotonic()
            config = await client.post(
                "/v1/configs",
                json={"node_id": node_id, "protocol": "wireguard", "public_key": wg_keys().public},
                headers=headers,
            )
            assert config.status_code == 201, config.text
            slowest = max(slowest, time.monotonic() - asked)
            issued += 1
            # Revoked at once (a write too), so the device limit never stops the loop.
            revoked = await client.delete(f"/v1/configs/{config.json()['id']}", headers=headers)
            assert revoked.status_code in (200, 204), revoked.text
            listed = await client.get("/v1/nodes", headers=headers)
            assert listed.status_code == 200, listed.text
            await asyncio.sleep(PACE_SECONDS)
    finally:
        signal_tree(anvil.process.pid, signal.SIGCONT)
    back = time.monotonic()
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() - back < RECOVERY_BOUND_SECONDS, "not ready 10 s after the chain"
    recovered = time.monotonic() - back
    assert await run_exclusive(services, "chain_sync", sync_chain)  # the indexer goes on
    print(
        f"\n[faults] chain frozen {OUTAGE_SECONDS:.0f} s: {issued} configs issued (slowest "
        f"{slowest * 1000:.0f} ms); /readyz 200 again {recovered:.2f} s after the chain returned"
    )
