"""`nodus-agent selftest` (the real command, as a process) on a real namespace: each broken
precondition is reported by its reason code (interface missing, forwarding off, no NAT, a
loopback health address), the probe route missing from the control plane is "too old", the
exit status is 1 and the fix-first line names what costs the most score; once the agent's
network set-up ran, the same checks pass."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node_agent.config import load_config
from node_agent.network import NodeNetwork
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import Lab, sh
from tests.node_agent.fake_control_plane import FakeControlPlane

pytestmark = [
    needs_tunnels,
    pytest.mark.skipif(not shutil.which("nft"), reason="requires nft (apt-get install nftables)"),
]
NODE_ID = "0x" + "5e" * 32


@pytest.fixture
def agent_key() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@pytest.fixture
async def fake(agent_key: LocalAccount) -> AsyncIterator[FakeControlPlane]:
    server = FakeControlPlane(node_id=NODE_ID, agent_address=agent_key.address)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def write_config(lab: Lab, namespace: str, url: str, agent_key: LocalAccount) -> Path:
    key = lab.directory / "agent-key"
    key.write_text(agent_key.key.hex())
    key.chmod(0o600)
    config = lab.directory / "agent.toml"
    config.write_text(
        f"""node_id = "{NODE_ID}"
endpoint = "198.18.0.1:51820"
agent_key_file = "{key}"
state_dir = "{lab.directory / "state"}"
[control_plane]
url = "{url}"
retry_attempts = 1
[health]
listen = "127.0.0.1:9810"
[pools]
ipv4 = "10.66.0.0/16"
ipv6 = "fd66:66:66::/112"
[wireguard]
interface = "{lab.name("w")}"
command_prefix = ["ip", "netns", "exec", "{namespace}"]
"""
    )
    return config


async def selftest(config: Path) -> tuple[int, dict[str, object]]:
    result = await sh(
        sys.executable, "-m", "node_agent", "selftest", "--config", str(config), "--json",
        check=False, seconds=60,
    )  # fmt: skip
    report: dict[str, object] = json.loads(result.stdout)
    return result.returncode, report


def reasons(report: dict[str, object]) -> dict[str, str]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check["reason"] for check in checks}


async def test_selftest_names_each_broken_precondition_then_passes_once_set_up(
    lab: Lab, fake: FakeControlPlane, agent_key: LocalAccount
) -> None:
    namespace = await lab.namespace("node")
    upstream = await lab.namespace("up")
    await lab.veth(namespace, "203.0.113.1/24", upstream, "203.0.113.2/24")
    await sh("ip", "-n", namespace, "route", "add", "default", "via", "203.0.113.2")
    config = write_config(lab, namespace, fake.url, agent_key)

    code, report = await selftest(config)

    assert code == 1
    assert reasons(report) == {
        "interface": "interface_missing",
        "forwarding": "forwarding_off",
        "nat": "nat_missing",
        "health": "health_loopback",
        "registration": "ok",  # signed in with the agent key
        "probe": "control_plane_too_old",  # no POST /v1/nodes/{id}/probe there
    }
    assert report["score_percent_at_most"] == 0
    first = report["fix_first"]
    assert isinstance(first, dict)
    assert first["reason"] == "health_loopback"  # uptime and latency: 65% of the score
    assert 'listen = "endpoint"' in first["fix"]

    loaded = load_config(config, environ={})
    lab.interfaces.append(loaded.wireguard.interface)
    network = NodeNetwork(loaded)
    assert (await network.setup()).problems == []
    code, report = await selftest(config)

    assert code == 1  # the health address is still loopback
    found = reasons(report)
    assert (found["interface"], found["forwarding"], found["nat"]) == ("ok", "ok", "ok")
    assert report["score_components"] == {
        "uptime": 0,
        "latency": 0,
        "handshake": 15,
        "traffic": 20,
    }
    await network.teardown()
