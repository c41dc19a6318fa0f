"""Issue 9, finding 5, with the real control plane: an operator brings a node up as the guide says
(`nodus-agent init`, NodeRegistry.register with the agent address, POST /v1/nodes, then
`nodus-agent pools`), and the agent, polling the real API over HTTP, refuses a peer whose
address is outside the node's pools: what a control plane with a tampered database serves."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import unit_of_work
from control_plane.device_configs import DeviceConfig
from control_plane.revisions import bump_revision
from control_plane.settings import Settings
from control_plane.tunnel.addresses import Pools, default_pools
from node_agent.cli import app as agent_cli
from node_agent.config import load_config
from node_agent.keys import load_agent_key
from node_agent.state import StateStore
from tests.control_plane.agent.conftest import (
    World,
    new_address,
    new_wireguard_key,
    node_token,
    wallet_token,
)
from tests.control_plane.prober.health import closed_port
from tests.node_agent.conftest import FakeBackend, running_agent, until
from tests.support.builders import NDS, fresh_wallet, node_body, post_node
from tests.support.devchain import transact

PROTOCOLS = ("wireguard", "openvpn")
runner = CliRunner()
STAKE = 100 * NDS


@pytest.fixture
async def api_url(app: FastAPI) -> AsyncIterator[str]:
    """The test's app (lifespan already running) served over real HTTP, as agents reach it."""
    port = closed_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 (waiting for uvicorn to bind)
            await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def agent_cli_run(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(
        runner.invoke, agent_cli, list(args), env={"NODUS_AGENT_PASSPHRASE": ""}
    )
    return result.exit_code, " ".join(result.output.split())


async def config_row(world: World, node_id: str, ipv4: str, ipv6: str) -> DeviceConfig:
    """A paying subscriber's WireGuard config on the node with these addresses, written straight
    to the database (the configs API would never allocate outside the pools: the attacker here
    is whoever can write the database), and the node's revision bumped."""
    config = DeviceConfig(
        id=uuid.uuid4(),
        node_id=node_id,
        subscriber=await world.subscriber(),
        protocol="wireguard",
        public_key=new_wireguard_key(),
        ipv4=ipv4,
        ipv6=ipv6,
    )
    async with unit_of_work(world.sessions) as session:
        session.add(config)
        await session.flush()
        await bump_revision(session, node_id)
    return config


async def test_the_agent_pins_the_real_pools_and_refuses_a_peer_outside_them(
    tmp_path: Path,
    api_url: str,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    world: World,
) -> None:
    # 1. nodus-agent init, as the guide says: no pools yet. The node id derives from the
    # operator's address and the salt init prints.
    operator = await fresh_wallet(w3, deployment, STAKE)
    path = tmp_path / "agent.toml"
    code, output = await agent_cli_run(
        "init", "--config", str(path), "--operator", operator.address,
        "--control-plane-url", api_url, "--health-listen", "", "--json",
    )  # fmt: skip
    assert code == 0, output
    created = json.loads(output)
    node_id = created["node_id"]
    code, output = await agent_cli_run("run", "--config", str(path))
    assert code == 2
    assert "run `nodus-agent pools" in output

    # 2. The operator stakes and registers the node with that agent, then registers it here.
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, token.functions.approve(registry.address, STAKE))
    await transact(
        w3,
        operator,
        registry.functions.register(
            bytes.fromhex(created["salt"][2:]), STAKE, created["agent_address"], ""
        ),
    )
    body = node_body(
        node_id, protocols=("wireguard",), wireguard_public_key=created["wireguard_public_key"]
    )
    response = await post_node(client, settings, operator, body)
    assert response.status_code == 201, response.text

    # 3. nodus-agent pools: signed in with the agent key, it pins the node's real pools.
    code, output = await agent_cli_run("pools", "--config", str(path))
    assert code == 0, output
    ipv4_pool, ipv6_pool = default_pools(node_id)
    loaded = load_config(path, environ={})
    assert (str(loaded.pools.ipv4), str(loaded.pools.ipv6)) == (ipv4_pool, ipv6_pool)
    answer = await client.get("/v1/agent/pools", headers=node_token(settings, node_id))
    wireguard, openvpn = (Pools.of(ipv4_pool, ipv6_pool).for_protocol(p) for p in PROTOCOLS)
    assert answer.json() == {
        "node_id": node_id,
        "ipv4_pool": ipv4_pool,
        "ipv6_pool": ipv6_pool,
        "wireguard_ipv4_pool": str(wireguard.ipv4),  # the lower halves
        "wireguard_ipv6_pool": str(wireguard.ipv6),
        "openvpn_ipv4_pool": str(openvpn.ipv4),  # the upper halves
        "openvpn_ipv6_pool": str(openvpn.ipv6),
    }
    assert str(openvpn.ipv4) == str(list(ipaddress.IPv4Network(ipv4_pool).subnets())[1])

    # 4. The database serves a peer inside the pools and one outside them.
    v4, v6 = ipaddress.IPv4Network(ipv4_pool), ipaddress.IPv6Network(ipv6_pool)
    await config_row(world, node_id, str(v4.network_address + 2), str(v6.network_address + 2))
    rogue = await config_row(world, node_id, "172.16.0.9", str(v6.network_address + 3))

    backend = FakeBackend()
    account = load_agent_key(loaded.agent_key_file, None)
    config = replace(loaded, control_plane=replace(loaded.control_plane, poll_wait_seconds=1))
    async with running_agent(config, account, backend) as agent:
        await until(lambda: agent.rejected is not None, seconds=10)
        assert backend.applies == []  # nothing of that answer reached the interface
        status = StateStore(config.state_dir).load_status()
        assert status is not None
        assert (
            f"172.16.0.9/32 is outside the node's pool {ipv4_pool}"
            in (status["rejected"]["reason"])
        )

        # Once the rogue config is gone, the next revision is applied.
        await world.revoke(rogue)
        await until(lambda: len(backend.applies) == 1, seconds=10)
        (peer,) = backend.applies[0]
        assert peer.allowed_ips[0] == f"{v4.network_address + 2}/32"


async def test_pools_answer_only_the_tokens_own_live_node(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node_id = await world.node()
    own = await client.get("/v1/agent/pools", headers=node_token(settings, node_id))
    assert own.status_code == 200, own.text
    pools = {"ipv4_pool": "10.8.0.0/16", "ipv6_pool": "fd00:8::/64"}
    halves = {
        "wireguard_ipv4_pool": "10.8.0.0/17",
        "wireguard_ipv6_pool": "fd00:8::/65",
        "openvpn_ipv4_pool": "10.8.128.0/17",
        "openvpn_ipv6_pool": "fd00:8:0:0:8000::/65",
    }
    assert own.json() == {"node_id": node_id, **pools, **halves}

    assert (await client.get("/v1/agent/pools")).status_code == 401
    wallet = await client.get("/v1/agent/pools", headers=wallet_token(settings, new_address()))
    assert wallet.status_code == 403
    assert wallet.json()["error"]["message"] == "this needs the node role"
    gone = await world.node(deleted=True)
    missing = await client.get("/v1/agent/pools", headers=node_token(settings, gone))
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no such node"
