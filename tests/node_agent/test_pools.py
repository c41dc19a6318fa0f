"""Issue 9, finding 5: the node's pools. `nodus-agent init` used to leave them empty, and the agent
then accepted any address the control plane sent. Now `nodus-agent pools` fetches them (signed
in with the agent key) and pins them in the config, the agent refuses to run without them, and
refuses peers outside them. Against the fake control plane, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node_agent.agent import Agent
from node_agent.cli import app
from node_agent.client import ControlPlaneClient
from node_agent.config import AgentConfig, ConfigError, load_config
from node_agent.keys import load_agent_key
from node_agent.state import StateStore
from tests.node_agent.conftest import FakeBackend, running_agent, until
from tests.node_agent.fake_control_plane import POOLS, FakeControlPlane, wg_peer

runner = CliRunner()


async def cli(*args: str) -> tuple[int, str]:
    """`nodus-agent ...` in a thread (its asyncio.run cannot nest in the test's loop)."""
    result = await asyncio.to_thread(
        runner.invoke, app, list(args), env={"NODUS_AGENT_PASSPHRASE": ""}
    )
    return result.exit_code, result.output


async def initialised(tmp_path: Path, fake: FakeControlPlane) -> Path:
    """`nodus-agent init` as an operator runs it (no pools), with the fake control plane told
    the new agent address (what registering the node on-chain does for the real one)."""
    config = tmp_path / "agent.toml"
    code, output = await cli(
        "init", "--config", str(config), "--node-id", fake.node_id,
        "--control-plane-url", fake.url, "--health-listen", "", "--json",
    )  # fmt: skip
    assert code == 0, output
    fake.agent_address = json.loads(output)["agent_address"]
    return config


async def test_init_leaves_no_pools_and_run_refuses_to_start_saying_how_to_fix_it(
    tmp_path: Path, fake: FakeControlPlane
) -> None:
    config = await initialised(tmp_path, fake)
    loaded = load_config(config, environ={})
    assert (loaded.pools.ipv4, loaded.pools.ipv6) == (None, None)

    code, output = await cli("run", "--config", str(config))
    assert code == 2
    text = " ".join(output.split())
    assert "pools.ipv4 and pools.ipv6 not set" in text
    assert f"run `nodus-agent pools --config {config}`" in text
    assert fake.count("/v1/agent/peers") == 0  # it never asked for peers

    # Nor can an Agent be built around such a config (any other entry point).
    account = load_agent_key(loaded.agent_key_file, None)
    async with ControlPlaneClient(loaded.control_plane, loaded.node_id, account) as client:
        with pytest.raises(ConfigError, match="nodus-agent pools"):
            Agent(loaded, client, {"wireguard": FakeBackend()}, StateStore(loaded.state_dir))


async def test_pools_fetches_and_pins_them_and_the_agent_refuses_peers_outside(
    tmp_path: Path, fake: FakeControlPlane, backend: FakeBackend
) -> None:
    config = await initialised(tmp_path, fake)
    before = config.read_text()

    code, output = await cli("pools", "--config", str(config), "--json")
    assert code == 0, output
    assert json.loads(output) == {
        "config": str(config),
        "node_id": fake.node_id,
        "ipv4_pool": "10.8.0.0/16",
        "ipv6_pool": "fd00:8::/112",
        "changed": True,
    }
    assert fake.count(POOLS) == 1
    loaded = load_config(config, environ={})
    assert (str(loaded.pools.ipv4), str(loaded.pools.ipv6)) == ("10.8.0.0/16", "fd00:8::/112")
    # Only the [pools] lines changed; every other line is the operator's as it was.
    changed = [line for line in config.read_text().splitlines() if line not in before]
    assert changed == ['ipv4 = "10.8.0.0/16"', 'ipv6 = "fd00:8::/112"']
    again = await cli("pools", "--config", str(config))
    assert again[0] == 0
    assert "already pinned" in again[1]

    # The control plane (broken or compromised) sends a peer outside the pinned pools.
    inside, outside = wg_peer(2), wg_peer(3)
    outside["allowed_ips"] = ["192.168.7.3/32", "fd00:8::3/128"]
    fake.set_peers([inside, outside])
    account = load_agent_key(loaded.agent_key_file, None)
    agent_config = with_fast_polls(loaded)
    async with running_agent(agent_config, account, backend) as agent:
        await until(lambda: agent.rejected is not None)
        assert backend.applies == []  # nothing of that answer reached the interface
        status = StateStore(agent_config.state_dir).load_status()
        assert status is not None
        assert (
            "192.168.7.3/32 is outside the node's pool 10.8.0.0/16" in status["rejected"]["reason"]
        )
        fake.set_peers([inside])
        await until(lambda: len(backend.applies) == 1)


def with_fast_polls(config: AgentConfig) -> AgentConfig:
    return replace(
        config,
        heartbeat_seconds=3600,
        metrics_seconds=3600,
        control_plane=replace(config.control_plane, poll_wait_seconds=1),
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"ipv4_pool": "0.0.0.0/0", "ipv6_pool": "fd00:8::/112"}, "not a private network"),
        ({"ipv4_pool": "8.8.0.0/16", "ipv6_pool": "fd00:8::/112"}, "not a private network"),
        ({"ipv4_pool": "10.8.0.0/16", "ipv6_pool": "2001:db8::/112"}, "unique local"),
        ({"ipv4_pool": "10.8.0.1/16", "ipv6_pool": "fd00:8::/112"}, "zero host bits"),
        ({"ipv4_pool": "10.8.0.0/16"}, "must be strings"),
        ({"node_id": "0x" + "00" * 32}, "not 0x"),
        (
            {
                "ipv4_pool": "10.8.0.0/16",
                "ipv6_pool": "fd00:8::/112",
                "openvpn_ipv4_pool": "10.8.0.0/17",  # the agent gives OpenVPN the upper half
            },
            r"openvpn_ipv4_pool is '10.8.0.0/17', this agent gives openvpn 10.8.128.0/17",
        ),
    ],
)
async def test_pools_the_agent_cannot_trust_are_not_pinned(
    tmp_path: Path,
    fake: FakeControlPlane,
    answer: dict[str, str],
    reason: str,
) -> None:
    config = await initialised(tmp_path, fake)
    fake.pools = answer
    before = config.read_text()
    code, output = await cli("pools", "--config", str(config))
    assert code == 2
    assert "cannot pin the node's pools" in " ".join(output.split())
    assert re.search(reason, " ".join(output.split()))
    assert config.read_text() == before


async def test_other_pools_than_the_pinned_ones_need_force(
    tmp_path: Path, fake: FakeControlPlane
) -> None:
    config = await initialised(tmp_path, fake)
    assert (await cli("pools", "--config", str(config)))[0] == 0
    fake.pools = {"ipv4_pool": "10.99.0.0/16", "ipv6_pool": "fd00:99::/112"}

    code, output = await cli("pools", "--config", str(config))
    assert code == 2
    assert "pins other pools" in " ".join(output.split())
    assert str(load_config(config, environ={}).pools.ipv4) == "10.8.0.0/16"

    code, output = await cli("pools", "--config", str(config), "--force")
    assert code == 0, output
    assert str(load_config(config, environ={}).pools.ipv4) == "10.99.0.0/16"


async def test_pools_before_the_node_is_registered_says_so(
    tmp_path: Path, fake: FakeControlPlane
) -> None:
    config = tmp_path / "agent.toml"
    operator = "0x" + "0b" * 20
    code, output = await cli(
        "init", "--config", str(config), "--operator", operator, "--control-plane-url", fake.url
    )
    assert code == 0, output
    assert f"nodus-agent pools --config {config}" in " ".join(output.split())
    # The fake does not know this node (its id is new): sign-in is refused.
    code, output = await cli("pools", "--config", str(config))
    assert code == 2
    assert "cannot pin the node's pools: HTTP 404: no such node" in " ".join(output.split())
