"""A real node agent polling the real control plane over HTTP with diffs: after issues,
revocations and a lapse, each applied as a diff onto its set, the agent serves exactly the set a
whole fetch gives."""

from __future__ import annotations

import ipaddress
import json
import logging
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import unit_of_work
from control_plane.device_configs import DeviceConfig
from control_plane.revisions import bump_revision
from control_plane.settings import Settings
from control_plane.subscriptions.expiry import bump_nodes_of
from control_plane.tunnel.addresses import default_pools
from node_agent.config import load_config
from node_agent.keys import load_agent_key
from node_agent.validate import parse_poll_answer, peer_to_json
from tests.control_plane.agent.conftest import World, new_wireguard_key, node_token
from tests.control_plane.agent.test_agent_pools import STAKE, agent_cli_run, api_url
from tests.node_agent.conftest import FakeBackend, running_agent, until
from tests.support.builders import fresh_wallet, node_body, post_node
from tests.support.devchain import transact

__all__ = ["api_url"]  # the fixture: the app served over real HTTP


async def registered_agent(
    tmp_path: Path,
    url: str,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
) -> tuple[str, Path]:
    """A node set up as the operator guide says (init, on-chain register, POST /v1/nodes,
    pools); its id and agent config file."""
    operator = await fresh_wallet(w3, deployment, STAKE)
    path = tmp_path / "agent.toml"
    code, output = await agent_cli_run(
        "init", "--config", str(path), "--operator", operator.address,
        "--control-plane-url", url, "--health-listen", "", "--json",
    )  # fmt: skip
    assert code == 0, output
    created = json.loads(output)
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, token.functions.approve(registry.address, STAKE))
    salt = bytes.fromhex(created["salt"][2:])
    await transact(
        w3, operator, registry.functions.register(salt, STAKE, created["agent_address"], "")
    )
    body = node_body(
        created["node_id"],
        protocols=("wireguard",),
        wireguard_public_key=created["wireguard_public_key"],
    )
    response = await post_node(client, settings, operator, body)
    assert response.status_code == 201, response.text
    code, output = await agent_cli_run("pools", "--config", str(path))
    assert code == 0, output
    return created["node_id"], path


class Configs:
    """WireGuard configs on the node, written as the configs service writes them (the config
    and its revision bump, logged, in one transaction), at consecutive pool addresses."""

    def __init__(self, world: World, node_id: str) -> None:
        self.world, self.node_id = world, node_id
        ipv4, ipv6 = default_pools(node_id)
        self.v4, self.v6 = ipaddress.IPv4Network(ipv4), ipaddress.IPv6Network(ipv6)
        self.host = 1

    async def issue(self, subscriber: str) -> DeviceConfig:
        self.host += 1
        config = DeviceConfig(
            id=uuid.uuid4(),
            node_id=self.node_id,
            subscriber=subscriber,
            protocol="wireguard",
            public_key=new_wireguard_key(),
            ipv4=str(self.v4.network_address + self.host),
            ipv6=str(self.v6.network_address + self.host),
        )
        async with unit_of_work(self.world.sessions) as session:
            session.add(config)
            await session.flush()
            await bump_revision(session, self.node_id, [config.id])
        return config


async def test_an_agent_applying_diffs_serves_the_whole_set(
    tmp_path: Path,
    api_url: str,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node_id, path = await registered_agent(tmp_path, api_url, client, settings, w3, deployment)
    configs = Configs(world, node_id)
    paying, lapsing = await world.subscriber(), await world.subscriber()
    first = await configs.issue(paying)
    await configs.issue(lapsing)
    loaded = load_config(path, environ={})
    config = replace(loaded, control_plane=replace(loaded.control_plane, poll_wait_seconds=5))
    backend = FakeBackend()

    async def revision() -> int:
        body = (await client.get("/v1/agent/peers", headers=node_token(settings, node_id))).json()
        return int(body["revision"])

    with caplog.at_level(logging.INFO, logger="nodus.agent"):
        async with running_agent(
            config, load_agent_key(config.agent_key_file, None), backend
        ) as agent:
            target = await revision()
            await until(lambda: agent.applied_revision == target, seconds=15)
            for _ in range(3):
                await configs.issue(paying)
            await world.revoke(first)
            await world.subscriber(lapsing, days=-1)
            async with unit_of_work(world.sessions) as session:
                await bump_nodes_of(session, [lapsing])  # the expiry job's bump
            await configs.issue(paying)
            target = await revision()
            await until(lambda: agent.applied_revision == target, seconds=15)
            held = agent.desired
            live = backend.live

    assert held is not None
    whole = (await client.get("/v1/agent/peers", headers=node_token(settings, node_id))).json()
    assert whole["revision"] == held.revision
    expected = parse_poll_answer(whole, config.pools).desired
    assert expected is not None
    as_json = sorted(json.dumps(peer_to_json(p)) for p in expected.peers)
    assert sorted(json.dumps(peer_to_json(p)) for p in held.peers) == as_json
    assert sorted(json.dumps(peer_to_json(p)) for p in live) == as_json
    assert len(expected.peers) == 4  # paying's 4 live configs; the lapsed and revoked are gone
    assert "a diff since" in caplog.text
