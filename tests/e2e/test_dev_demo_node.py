"""`scripts/dev` as a newcomer runs it, as root: the whole stack and a demo WireGuard node in a
network namespace. The node is listed online by `nodus nodes`, a paying dev account gets a
config for it with `nodus up --config-only`, and a device joined to the node's namespace brings
that config up with wireguard-go and reaches the node through the tunnel. A second run adopts
what the first started; `scripts/dev stop` stops both runs' services and the node, and removes
its namespace.

Free ports, a scratch database and a state directory of the test's own: the developer's
.nodus and deployments/ are never touched."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from control_plane.paths import REPO_ROOT
from control_plane.tunnel.addresses import Pools, default_pools
from tests.e2e.conftest import needs_tunnels, scripts_dev_env, start_scripts_dev
from tests.e2e.lab import Lab, ping, sh, stop_process
from tests.e2e.stack import until

pytestmark = [
    needs_tunnels,
    pytest.mark.skipif(not shutil.which("nft"), reason="requires nft (apt-get install nftables)"),
]


async def test_scripts_dev_runs_a_demo_node_that_a_subscriber_connects_to(
    lab: Lab, dev_database: str, tmp_path: Path
) -> None:
    env = scripts_dev_env(tmp_path, dev_database)
    api_port, anvil_port = env["NODUS_API_PORT"], env["NODUS_ANVIL_PORT"]
    state = tmp_path / "state"
    cli_env = {
        **env,
        "NODUS_API_URL": f"http://127.0.0.1:{api_port}",
        "NODUS_RPC_URL": f"http://127.0.0.1:{anvil_port}",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "COLUMNS": "200",
    }
    namespace = f"nodus-dev-{api_port}"
    dev = REPO_ROOT / "scripts" / "dev"
    runs: list[asyncio.subprocess.Process] = []

    async def start_run(log: Path) -> asyncio.subprocess.Process:
        run = await start_scripts_dev(env, log)
        runs.append(run)
        return run

    async def nodus(*args: str, key: str | None = None) -> str:
        extra = {"NODUS_PRIVATE_KEY": key} if key else {}
        result = await sh(
            sys.executable, "-m", "nodus_cli", *args,
            env={**cli_env, **extra}, cwd=REPO_ROOT, seconds=120, check=False,
        )  # fmt: skip
        assert result.ok, result.stdout + result.stderr
        return result.stdout

    first_log = tmp_path / "first.log"
    try:
        await start_run(first_log)

        async def listed_online() -> dict[str, Any] | None:
            if "running; Ctrl-C to stop" not in first_log.read_text():
                assert runs[0].returncode is None, first_log.read_text()
                return None
            items = json.loads(await nodus("nodes", "--json"))["items"]
            online = [node for node in items if node["online"]]
            return online[0] if online else None

        await until(listed_online, 300, "scripts/dev's demo node listed online", step=2)
        node = await listed_online()
        assert node is not None
        said = first_log.read_text()
        assert f"demo node {node['id']} is online" in said, said
        assert "nodus nodes" in said
        subscriber_key = json.loads((state / "dev.json").read_text())["accounts"][5]["private_key"]

        # A subscriber: `nodus up --config-only` pays and gets a config for the demo node ...
        conf = tmp_path / "device.conf"
        up = await nodus(
            "up", "--node", node["id"], "--subscribe", "1",
            "--config-only", str(conf), "--json", key=subscriber_key,
        )  # fmt: skip
        summary = json.loads(up)
        assert summary["node"] == node["id"]
        # ... and a device joined to the node's namespace brings it up and reaches the node.
        device = await lab.namespace("dev")
        await lab.veth(namespace, "10.250.0.1/30", device, "10.250.0.2/30")
        endpoint_host = node["endpoint"].rsplit(":", 1)[0]
        await sh("ip", "-n", device, "route", "add", f"{endpoint_host}/32", "via", "10.250.0.1")
        interface = await lab.wireguard_go(device, "c")
        stripped = await sh("wg-quick", "strip", str(conf))
        plain = tmp_path / "device.stripped"
        plain.write_text(stripped.stdout)
        await sh("ip", "netns", "exec", device, "wg", "setconf", interface, str(plain))
        address = next(
            line.split("=", 1)[1].split(",")[0].strip()
            for line in conf.read_text().splitlines()
            if line.startswith("Address")
        )
        node_v4 = Pools.of(*default_pools(node["id"])).node_addresses()[0].split("/")[0]
        await sh("ip", "-n", device, "addr", "add", address, "dev", interface)
        await sh("ip", "-n", device, "link", "set", interface, "up")
        await sh("ip", "-n", device, "route", "add", f"{node_v4}/32", "dev", interface)
        await until(
            lambda: ping(device, node_v4, wait=0.5), 30, "a ping through the tunnel", step=0
        )

        # A second run finds everything up and adopts it, the demo node too.
        second_log = tmp_path / "second.log"
        await start_run(second_log)
        await until(
            lambda: "running; Ctrl-C to stop" in second_log.read_text(), 120, "the second run"
        )
        assert "the demo node's agent already runs" in second_log.read_text()

        stopped = await sh(str(dev), "stop", env=env, cwd=REPO_ROOT, seconds=120)
        assert "stopping dev-node" in stopped.stderr, stopped.stderr
        for run in runs:
            async with asyncio.timeout(60):
                await run.wait()
        assert not (await sh("ip", "netns", "exec", namespace, "true", check=False)).ok
    finally:
        await sh(str(dev), "stop", env=env, cwd=REPO_ROOT, seconds=120, check=False)
        for run in runs:
            await stop_process(run)
