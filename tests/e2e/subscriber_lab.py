"""A subscriber's world in namespaces, for `nodus up`: a client host, the internet ("inet":
a router that also runs the real control plane, so the API sees each client's real address),
a node (registered by the operator's CLI path, tests/e2e/operator_cli.py; its endpoint is its
uplink address; `nodus-agent run` inside it makes its interface, forwarding and NAT, and answers
the probers on the endpoint), and a "beyond" host on the internet that has a route to the node
and none to the client: only traffic through the node gets answers from it.

    client 198.51.100.2 --- 198.51.100.1 inet 198.18.0.2 --- 198.18.0.1 node
                                         inet 203.0.113.1 --- 203.0.113.2 beyond
                  the API: 192.0.2.80 on inet's loopback

PostgreSQL and anvil stay on the host's loopback and are forwarded into "inet" (anvil also on
192.0.2.80, for `nodus up --subscribe`); the host reaches the API by a forwarder too."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.paths import REPO_ROOT
from control_plane.settings import Settings
from tests.e2e.lab import Lab, sh
from tests.e2e.netns_forward import Forwarders
from tests.e2e.operator_cli import OperatorNode, WalletHost, register_as_operator
from tests.e2e.stack import AGENT_ENV, ControlPlane, free_tcp_port, until

CLIENT, INET_CLIENT_SIDE = "198.51.100.2", "198.51.100.1"
NODE, INET_NODE_SIDE = "198.18.0.1", "198.18.0.2"
BEYOND, INET_BEYOND_SIDE = "203.0.113.2", "203.0.113.1"
API_HOST = "192.0.2.80"  # on inet's loopback: off the client's own subnet, as on the internet
WG_PORT = 51820
LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
with open(sys.argv[3], "a") as seen:
    while True:
        connection, peer = server.accept()
        seen.write(peer[0] + "\\n")
        seen.flush()
        connection.sendall(b"hello from beyond\\n")
        connection.close()
"""


def _port(url: str) -> int:
    port = urlsplit(url.replace("postgresql+asyncpg", "http")).port
    assert port is not None, url
    return port


@dataclass
class SubscriberLab:
    lab: Lab
    client: str
    inet: str
    node: str
    beyond: str
    api_url: str  # as the client sees it
    rpc_url: str  # as the client sees it
    host_api_url: str  # as this process sees it
    node_id: str
    node_interface: str
    operator: OperatorNode  # how the node was registered, and by which wallet
    control_plane: NamespacedControlPlane
    seen: Path
    beyond_port: int
    deployments_dir: Path

    async def nodus(
        self, *args: str, key: str, state: Path, seconds: float = 120
    ) -> tuple[int, str, str]:
        """`nodus ARGS` run inside the client namespace."""
        env = {
            **os.environ,
            "NODUS_PRIVATE_KEY": key,
            "XDG_STATE_HOME": str(state),
            "XDG_CONFIG_HOME": str(state / "config"),  # the token cache: never the host's
            "NODUS_API_URL": self.api_url,
            "NODUS_RPC_URL": self.rpc_url,
            "NODUS_DEPLOYMENTS_DIR": str(self.deployments_dir),
            "COLUMNS": "200",
        }
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.client, sys.executable, "-m", "nodus_cli", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO_ROOT,
        )  # fmt: skip
        async with asyncio.timeout(seconds):
            out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    async def reach_beyond(self, seconds: float = 3) -> str | None:
        """A TCP exchange with the beyond host from the client; its greeting or None."""
        script = (
            "import socket; c = socket.create_connection(("
            f"{BEYOND!r}, {self.beyond_port}), timeout={seconds}); print(c.recv(100).decode())"
        )
        result = await sh(
            "ip", "netns", "exec", self.client, sys.executable, "-c", script,
            check=False, seconds=seconds + 10,
        )  # fmt: skip
        return result.stdout.strip() if result.ok else None


async def build(
    lab: Lab,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    forwarders: Forwarders,
    short_dir: Path,
    control_planes: list[ControlPlane],
) -> SubscriberLab:
    client, inet = await lab.namespace("cl"), await lab.namespace("inet")
    node, beyond = await lab.namespace("node"), await lab.namespace("by")
    await lab.veth(inet, f"{INET_CLIENT_SIDE}/24", client, f"{CLIENT}/24")
    await lab.veth(inet, f"{INET_NODE_SIDE}/24", node, f"{NODE}/24")
    await lab.veth(inet, f"{INET_BEYOND_SIDE}/24", beyond, f"{BEYOND}/24")
    await sh("ip", "-n", client, "route", "add", "default", "via", INET_CLIENT_SIDE)
    await sh("ip", "-n", node, "route", "add", "default", "via", INET_NODE_SIDE)
    await sh("ip", "-n", beyond, "route", "add", "198.18.0.0/24", "via", INET_BEYOND_SIDE)
    await sh("ip", "netns", "exec", inet, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    await sh("ip", "-n", inet, "addr", "add", f"{API_HOST}/32", "dev", "lo")

    # PostgreSQL and anvil into "inet"; the control plane there; the API back to the host.
    pg, anvil, api = _port(settings.database_url), _port(settings.rpc_url), free_tcp_port()
    forwarders.add((inet, "127.0.0.1", pg), (None, "127.0.0.1", pg))
    forwarders.add((inet, "127.0.0.1", anvil), (None, "127.0.0.1", anvil))
    forwarders.add((inet, API_HOST, anvil), (None, "127.0.0.1", anvil))
    host_api = free_tcp_port()
    forwarders.add((None, "127.0.0.1", host_api), (inet, API_HOST, api))
    control_plane = NamespacedControlPlane(settings, lab.directory, api, namespace=inet)
    control_plane.public_url = f"http://{API_HOST}:{api}"
    control_plane.host_url = f"http://127.0.0.1:{host_api}"
    control_planes.append(control_plane)
    await control_plane.start()

    registered, interface = await _start_node(
        lab, control_plane, settings, w3, deployment, node, short_dir
    )
    seen = lab.directory / "seen.txt"
    beyond_port = free_tcp_port()
    listener = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", beyond, sys.executable, "-c", LISTENER, BEYOND, str(beyond_port),
        str(seen), start_new_session=True,
    )  # fmt: skip
    lab.processes.append(listener)
    return SubscriberLab(
        lab=lab, client=client, inet=inet, node=node, beyond=beyond,
        api_url=control_plane.public_url, rpc_url=f"http://{API_HOST}:{anvil}",
        host_api_url=control_plane.host_url, node_id=registered.node_id,
        node_interface=interface, operator=registered, control_plane=control_plane,
        seen=seen, beyond_port=beyond_port, deployments_dir=settings.deployments_dir,
    )  # fmt: skip


class NamespacedControlPlane(ControlPlane):
    """The real control plane, served from inside a namespace on every address there."""

    def __init__(self, settings: Settings, directory: Path, port: int, namespace: str) -> None:
        super().__init__(settings, directory, port)
        self.namespace = namespace
        self.public_url = ""
        self.host_url = ""

    @property
    def url(self) -> str:
        return self.host_url or super().url

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "NODUS_PUBLIC_URL": self.public_url}

    async def start(self) -> None:
        self.starts += 1
        log = (self.directory / f"control-plane-{self.starts}.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.namespace,
            sys.executable, "-m", "uvicorn", "--factory", "control_plane.app:build_from_env",
            "--host", "0.0.0.0", "--port", str(self.port),  # every address of the lab's inet
            "--timeout-graceful-shutdown", "1", "--log-level", "warning",
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT, env=self.environment(),
        )  # fmt: skip
        log.close()

        async def ready() -> bool:
            assert self.process is not None
            assert self.process.returncode is None, f"the control plane exited; see {log.name}"
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.url}/readyz", timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await until(ready, 60, "the control plane to answer /readyz", step=0.2)


async def _start_node(
    lab: Lab,
    control_plane: NamespacedControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    namespace: str,
    short_dir: Path,
) -> tuple[OperatorNode, str]:
    """An operator's node serving both protocols, registered by README's operator path
    (tests/e2e/operator_cli.py), then `nodus-agent run` inside the node's namespace, as on a
    node host: it reaches the API through "inet", makes its own interface, forwarding and NAT,
    and answers the probers on its endpoint (TCP, the WireGuard port)."""
    interface = lab.name("n")
    lab.interfaces.append(interface)
    wallet_host = WalletHost.of(settings, control_plane.url, lab.directory / "operator")
    registered = await register_as_operator(
        w3, deployment, wallet_host,
        config=lab.directory / "node" / "agent.toml",
        endpoint=f"{NODE}:{WG_PORT}",
        protocols="wireguard,openvpn",
        agent_control_plane_url=control_plane.public_url,
        interface=interface,
        node_host=("ip", "netns", "exec", namespace),
    )  # fmt: skip
    log_path = lab.directory / "agent.log"
    with log_path.open("ab") as log:
        agent = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", namespace,
            sys.executable, "-m", "node_agent", "run", "--config", str(registered.config),
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT,
            env={
                **os.environ, **AGENT_ENV,
                "NODUS_AGENT_OPENVPN_ENABLED": "true",
                "NODUS_AGENT_OPENVPN_STATE_DIR": str(short_dir / "ovpn"),
                "NODUS_AGENT_OPENVPN_STATUS_INTERVAL_SECONDS": "1",
                "NODUS_AGENT_OPENVPN_LISTEN": NODE,
            },
        )  # fmt: skip
    lab.processes.append(agent)
    status_file = registered.config.parent / "state" / "status.json"

    def synced() -> bool:
        assert agent.returncode is None, log_path.read_text()[-3000:]
        if not status_file.exists():
            return False
        status = json.loads(status_file.read_text())
        return status.get("revision") is not None and status.get("fail_static") is False

    await until(synced, 60, "the agent's first sync")
    return registered, interface
