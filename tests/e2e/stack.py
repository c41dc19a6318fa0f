"""The pieces of an end-to-end run: the real control plane served by uvicorn in a subprocess
(so a test can stop it and start it again), a node (registered by the operator's CLI path,
tests/e2e/operator_cli.py; a wireguard-go interface in its own namespace, `nodus-agent run`
managing it through `ip netns exec`), and subscribers' devices in client namespaces."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.paths import REPO_ROOT
from control_plane.settings import Settings
from control_plane.tunnel.addresses import Pools, default_pools
from node_agent.state import StateStore
from tests.control_plane.auth.conftest import bearer
from tests.e2e.lab import Lab, ping, sh, stop_process, wg_peers
from tests.e2e.operator_cli import WalletHost, register_as_operator
from tests.support.builders import wallet_headers, wg_keys

NODE_ENDPOINT = "198.18.0.1"  # the node's "public" address (on its loopback)
WG_PORT = 51820
PLACEHOLDER = "<insert your private key>"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def until(condition: Any, seconds: float, what: str, step: float = 0.1) -> float:
    """Awaits `condition()` (sync or async) until true; the seconds it took. Fails after
    `seconds` with `what`."""
    started = time.monotonic()
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(step)


def probing(settings: Settings, *, allow_private: bool) -> Settings:
    """The settings with the probers' private-address switch set, and rounds every 2 s."""
    prober = settings.prober.model_copy(
        update={"allow_private_targets": allow_private, "interval_seconds": 2.0}
    )
    return settings.model_copy(update={"prober": prober})


@dataclass
class ControlPlane:
    """`uvicorn control_plane.app:build_from_env` on a fixed local port, with the test's
    database, anvil and secrets, and its jobs running on short intervals."""

    settings: Settings
    directory: Path
    port: int
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "NODUS_DATABASE_URL": s.database_url,
            "NODUS_RPC_URL": s.rpc_url,
            "NODUS_CHAIN_ID": str(s.chain_id),
            "NODUS_DEPLOYMENTS_DIR": str(s.deployments_dir),
            "NODUS_PUBLIC_URL": self.url,
            "NODUS_JWT_SECRET": s.jwt_secret.get_secret_value(),
            "NODUS_API_KEY_SECRET": s.api_key_secret.get_secret_value(),
            "NODUS_DATA_KEY": s.data_key.get_secret_value(),
            "NODUS_RUN_JOBS": "true",
            "NODUS_EXPIRY_INTERVAL_SECONDS": "1",
            "NODUS_CHAIN_SYNC_INTERVAL_SECONDS": "1",
            # The replica reads the chain's clock every second, as often as the jobs run.
            "NODUS_CHAIN_CLOCK_SECONDS": "1",
            "NODUS_LOG_LEVEL": "WARNING",
            # The lab's nodes live on private addresses inside network namespaces.
            "NODUS_ALLOW_PRIVATE_ENDPOINTS": str(s.allow_private_endpoints).lower(),
            # ... and so the probers refuse them unless the test allows it, as production does.
            "NODUS_PROBER_ALLOW_PRIVATE_TARGETS": str(s.prober.allow_private_targets).lower(),
            "NODUS_PROBER_INTERVAL_SECONDS": str(s.prober.interval_seconds),
        }

    async def start(self) -> None:
        self.starts += 1
        log = (self.directory / f"control-plane-{self.starts}.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "--factory", "control_plane.app:build_from_env",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--timeout-graceful-shutdown", "1", "--log-level", "warning",
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT, env=self.environment(),
        )  # fmt: skip
        log.close()

        async def ready() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"the control plane exited; see {log.name}")
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.url}/readyz", timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await until(ready, 60, "the control plane to answer /readyz", step=0.2)

    async def stop(self) -> None:
        if self.process is not None:
            await stop_process(self.process, grace=10)
            self.process = None


@dataclass
class Node:
    node_id: str
    operator: LocalAccount
    namespace: str
    interface: str
    tunnel_ipv4: str  # the node's own address in its pool, what clients ping
    config: Path
    state_dir: Path
    health_port: int
    agent: asyncio.subprocess.Process | None = None

    def status(self) -> dict[str, Any]:
        return StateStore(self.state_dir).load_status() or {}

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{self.health_port}/health", timeout=2)
            body: dict[str, Any] = response.json()
            return body

    async def peers(self) -> set[str]:
        return await wg_peers(self.namespace, self.interface)


AGENT_ENV = {
    # Fast enough for tests; the long-poll keeps its production wait.
    "NODUS_AGENT_CONTROL_PLANE_BACKOFF_BASE_SECONDS": "0.2",
    "NODUS_AGENT_CONTROL_PLANE_BACKOFF_CAP_SECONDS": "1",
    "NODUS_AGENT_CONTROL_PLANE_BREAKER_FAILURES": "3",
    "NODUS_AGENT_CONTROL_PLANE_BREAKER_RESET_SECONDS": "1",
    "NODUS_AGENT_CONTROL_PLANE_REQUEST_TIMEOUT_SECONDS": "3",
    "NODUS_AGENT_REPORTS_HEARTBEAT_SECONDS": "2",
    "NODUS_AGENT_REPORTS_METRICS_SECONDS": "2",
    "NODUS_AGENT_EXPIRY_CHECK_SECONDS": "5",
}


async def start_node(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
) -> Node:
    """A node from scratch, the way an operator brings one up."""
    namespace = await lab.namespace("node")
    await sh("ip", "-n", namespace, "addr", "add", f"{NODE_ENDPOINT}/32", "dev", "lo")
    interface = await lab.wireguard_go(namespace, "n")
    health_port = free_tcp_port()
    directory = lab.directory / "node"

    # README's "Run a node": init, the register line it prints, pools (tests/e2e/operator_cli.py).
    registered = await register_as_operator(
        w3, deployment, WalletHost.of(settings, control_plane.url, lab.directory / "operator"),
        config=directory / "agent.toml",
        endpoint=f"{NODE_ENDPOINT}:{WG_PORT}",
        protocols="wireguard",
        agent_control_plane_url=control_plane.url,
        interface=interface,
        # The agent process runs outside the node's namespace: its health answers on loopback.
        init_options=(
            "--listen-port", str(WG_PORT),
            "--health-listen", f"127.0.0.1:{health_port}", "--loopback-health",
        ),
    )  # fmt: skip
    node_id, config = registered.node_id, registered.config
    ipv4_pool, ipv6_pool = default_pools(node_id)
    assert registered.pools["ipv4_pool"] == ipv4_pool
    assert registered.pools["ipv6_pool"] == ipv6_pool
    tunnel_v4, tunnel_v6 = Pools.of(ipv4_pool, ipv6_pool).node_addresses()

    # The node's tunnel addresses, then the agent (its `wg` runs inside the namespace).
    await sh("ip", "-n", namespace, "addr", "add", tunnel_v4, "dev", interface)
    await sh("ip", "-n", namespace, "-6", "addr", "add", tunnel_v6, "dev", interface)
    await sh("ip", "-n", namespace, "link", "set", interface, "up")
    node = Node(
        node_id=node_id,
        operator=registered.operator,
        namespace=namespace,
        interface=interface,
        tunnel_ipv4=tunnel_v4.split("/")[0],
        config=config,
        state_dir=directory / "state",
        health_port=health_port,
    )
    await start_agent(lab, node)
    return node


async def start_agent(lab: Lab, node: Node) -> None:
    log = (lab.directory / "agent.log").open("ab")
    node.agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node_agent", "run", "--config", str(node.config),
        stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT,
        env={
            **os.environ,
            **AGENT_ENV,
            "NODUS_AGENT_WIREGUARD_COMMAND_PREFIX": f"ip netns exec {node.namespace}",
        },
    )  # fmt: skip
    log.close()
    lab.processes.append(node.agent)

    def synced() -> bool:
        assert node.agent is not None
        assert node.agent.returncode is None, "the agent exited"
        status = node.status()
        return status.get("revision") is not None and status.get("fail_static") is False

    await until(synced, 30, "the agent's first sync")


@dataclass
class Device:
    """A subscriber's device: a client namespace with wireguard-go set up from the issued
    config (its private key made here, never sent)."""

    account: LocalAccount
    namespace: str
    interface: str
    config_id: str
    public_key: str
    address: str
    expires_at: str


async def connect_device(
    lab: Lab,
    control_plane: ControlPlane,
    node: Node,
    account: LocalAccount,
    index: int,
) -> Device:
    namespace = await lab.namespace(f"c{index}")
    await lab.veth(node.namespace, f"198.18.{index}.1/24", namespace, f"198.18.{index}.2/24")
    await sh("ip", "-n", namespace, "route", "add", "default", "via", f"198.18.{index}.1")

    keys = wg_keys()  # `wg genkey | wg pubkey`, on the device
    async with httpx.AsyncClient(base_url=control_plane.url) as http:
        headers = await bearer(http, account)  # Sign-In with Ethereum
        response = await http.post(
            "/v1/configs",
            json={"node_id": node.node_id, "protocol": "wireguard", "public_key": keys.public},
            headers=headers,
        )
        assert response.status_code == 201, response.text
    issued = response.json()

    interface = await lab.wireguard_go(namespace, "c")
    conf = lab.directory / f"{interface}.conf"
    conf.write_text(issued["config"].replace(PLACEHOLDER, keys.private))
    conf.chmod(0o600)
    stripped = await sh("wg-quick", "strip", str(conf))
    plain = lab.directory / f"{interface}.stripped"
    plain.write_text(stripped.stdout)
    plain.chmod(0o600)
    await sh("ip", "netns", "exec", namespace, "wg", "setconf", interface, str(plain))
    address = issued["address"][0]
    await sh("ip", "-n", namespace, "addr", "add", address, "dev", interface)
    await sh("ip", "-n", namespace, "link", "set", interface, "up")
    await sh("ip", "-n", namespace, "route", "add", f"{node.tunnel_ipv4}/32", "dev", interface)
    return Device(
        account=account,
        namespace=namespace,
        interface=interface,
        config_id=issued["id"],
        public_key=keys.public,
        address=address,
        expires_at=issued["expires_at"],
    )


async def tunnel_up(device: Device, node: Node, seconds: float = 20) -> float:
    """Pings the node's tunnel address from the device until it answers; the seconds it took."""
    return await until(
        lambda: ping(device.namespace, node.tunnel_ipv4, wait=0.5), seconds, "a ping", step=0
    )


async def tunnel_down(device: Device, node: Node) -> bool:
    return not await ping(device.namespace, node.tunnel_ipv4, count=2, wait=1)


async def revoke(control_plane: ControlPlane, settings: Settings, device: Device) -> None:
    async with httpx.AsyncClient(base_url=control_plane.url) as http:
        response = await http.delete(
            f"/v1/configs/{device.config_id}",
            headers=wallet_headers(settings, device.account.address),
        )
        assert response.status_code == 204, response.text
