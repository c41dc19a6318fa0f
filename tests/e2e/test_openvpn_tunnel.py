"""End-to-end test 4: OpenVPN for real, in network namespaces.

The real control plane (uvicorn on a free port, the test's PostgreSQL, anvil with the deployed
contracts) and the real `nodus-agent` loop (`Agent` with the OpenVPN backend built from an
`[openvpn]` table, signed in with its on-chain agent key) run an `openvpn` server in a "node"
namespace. An operator registers the node on-chain and through the API; a subscriber pays
on-chain, signs in, makes a key and a CSR locally, gets an inline profile, fills in its key,
and a real `openvpn` client in a "client" namespace connects and pings the node's tunnel
address. Then the subscriber revokes the config: the client is cut within seconds, and a second
attempt is refused at the TLS handshake by the CRL.

Underlay addresses come from 198.18.0.0/15; namespaces, interfaces and processes have unique
names and are removed by name and PID even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from cryptography import x509
from eth_account import Account
from eth_account.signers.local import LocalAccount

from control_plane.app import create_app
from control_plane.chain.contracts import (
    Deployment,
    Web3Client,
    contract,
    new_node_salt,
    node_id_of,
)
from control_plane.settings import Settings
from node_agent.agent import Agent
from node_agent.backends.openvpn import OpenVpnBackend, crl_info
from node_agent.client import ControlPlaneClient
from node_agent.config import load_config
from node_agent.pools import fetch_pools, pin_pools
from node_agent.runner import build_backends
from node_agent.state import StateStore
from tests.control_plane.auth.conftest import login
from tests.support.builders import (
    MIN_STAKE,
    NDS,
    ec_key,
    fresh_wallet,
    key_pem,
    make_csr,
    paying_subscriber,
)
from tests.support.devchain import transact

PLACEHOLDER = "<insert your private key>"
UNDERLAY = ipaddress.IPv4Network("198.18.0.0/15")
CONNECTED = "Initialization Sequence Completed"

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path("/dev/net/tun").exists(),
        reason="requires root and /dev/net/tun",
    ),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("openvpn", "ip", "ping")),
        reason="requires openvpn, ip and ping (apt-get install -y openvpn iproute2 iputils-ping)",
    ),
]


# --- The control plane, served for real ---------------------------------------------------------


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The control plane under uvicorn on a free port, in a thread with its own event loop
    (so the test's blocking moments never stall it); its base URL."""
    app = create_app(settings)
    port = _free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="control-plane", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the control plane did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# --- Namespaces and processes ---------------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Lab:
    """Two namespaces joined by a veth pair, and every process started in them."""

    tag: str
    node_ns: str
    client_ns: str
    node_ip: str
    client_ip: str
    veth: tuple[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, namespace: str, log: Path, *command: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *command],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    async def run(self, namespace: str, *command: str) -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", namespace, *command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        assert process.returncode is not None
        return subprocess.CompletedProcess(command, process.returncode, out.decode(), "")


def _netns_pids(namespace: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in result.stdout.split() if pid.isdigit()]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    """Unique namespaces `nds-<tag>-node` / `nds-<tag>-client` and a veth pair with underlay
    addresses from a random /30 of 198.18.0.0/15; all removed afterwards (processes by PID)."""
    tag = secrets.token_hex(3)
    subnet = list(UNDERLAY.subnets(new_prefix=30))[secrets.randbelow(2**15 - 2) + 1]
    node_ip, client_ip = (str(host) for host in subnet.hosts())
    setup = Lab(
        tag=tag,
        node_ns=f"nds-{tag}-node",
        client_ns=f"nds-{tag}-client",
        node_ip=node_ip,
        client_ip=client_ip,
        veth=(f"nv{tag}n", f"nv{tag}c"),
    )
    try:
        _ip("netns", "add", setup.node_ns)
        _ip("netns", "add", setup.client_ns)
        _ip("link", "add", setup.veth[0], "type", "veth", "peer", "name", setup.veth[1])
        for namespace, veth, address in (
            (setup.node_ns, setup.veth[0], node_ip),
            (setup.client_ns, setup.veth[1], client_ip),
        ):
            _ip("link", "set", veth, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/30", "dev", veth)
            _ip("-n", namespace, "link", "set", veth, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield setup
    finally:
        for process in setup.processes:
            _stop(process)
        for namespace in (setup.node_ns, setup.client_ns):
            for pid in _netns_pids(namespace):  # anything left behind, by PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", setup.veth[0]], capture_output=True, check=False)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert tag not in left, f"namespaces left behind: {left}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """State for the agent (a unix socket path holds at most 107 bytes). The logs' tails are
    printed on the way out: pytest shows them when the test fails."""
    path = Path(tempfile.mkdtemp(prefix="nds-", dir="/tmp"))
    yield path
    for log in sorted(path.rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        print(f"--- {log.relative_to(path)} (last 40 lines)", *lines[-40:], sep="\n")
    shutil.rmtree(path, ignore_errors=True)


# --- Helpers --------------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Polls `condition` (another process's state); the seconds it took."""
    started = time.monotonic()
    deadline = started + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def logged(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


async def bearer(http: httpx.AsyncClient, account: LocalAccount) -> dict[str, str]:
    """A wallet's token by a real SIWE sign-in. The control plane commits a request's
    transaction after its response is sent (FastAPI runs a yield dependency's exit code after
    the response), so a nonce used at once is sometimes not committed yet ("unknown"; about 1
    sign-in in 40 here): such a refusal is tried again, anything else fails the test."""
    for _ in range(3):
        response = await login(http, account)
        if response.status_code == 200:
            return {"authorization": f"Bearer {response.json()['access_token']}"}
        assert "nonce is unknown" in response.text, response.text
        await asyncio.sleep(0.2)
    pytest.fail(f"sign-in refused three times: {response.text}")


async def register_node(
    w3: Web3Client, deployment: Deployment, operator: LocalAccount, agent: str
) -> str:
    salt = new_node_salt()
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, token.functions.approve(registry.address, MIN_STAKE))
    await transact(w3, operator, registry.functions.register(salt, MIN_STAKE, agent, ""))
    return node_id_of(operator.address, salt)


@contextlib.asynccontextmanager
async def running_agent(
    state_dir: Path, url: str, node_id: str, agent_key: LocalAccount, node_ns: str
) -> AsyncIterator[tuple[Agent, OpenVpnBackend]]:
    """`nodus-agent run` as its runner wires it (config file, backends, client, state), in
    this event loop; the OpenVPN server runs in `node_ns`. Stops the server on the way out."""
    key_file = state_dir / "agent-key"
    key_file.write_text(agent_key.key.hex())
    key_file.chmod(0o600)
    config_file = state_dir / "agent.toml"
    config_file.write_text(
        f"""
node_id = "{node_id}"
state_dir = "{state_dir}"
agent_key_file = "{key_file}"

[control_plane]
url = "{url}"
poll_wait_seconds = 20

[health]
listen = ""

[wireguard]
enabled = false

[openvpn]
command_prefix = ["ip", "netns", "exec", "{node_ns}"]
status_interval_seconds = 1
maintenance_interval_seconds = 1
reconcile_interval_seconds = 2
"""
    )
    # `nodus-agent pools`: the node's pools from the control plane, pinned before it may run.
    loaded = load_config(config_file, environ={})
    pin_pools(config_file, await fetch_pools(loaded, agent_key))
    config = load_config(config_file, environ={})
    task: asyncio.Task[None] | None = None
    backend: OpenVpnBackend | None = None
    try:
        async with ControlPlaneClient(config.control_plane, node_id, agent_key) as client:
            backends = build_backends(config, client)
            backend = cast(OpenVpnBackend, backends["openvpn"])
            agent = Agent(config, client, backends, StateStore(config.state_dir))
            task = asyncio.create_task(agent.run(), name="nodus-agent")
            yield agent, backend
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if backend is not None:
            await backend.stop()


# --- The test -------------------------------------------------------------------------------------


async def test_an_openvpn_client_connects_pings_and_is_cut_off_when_revoked(
    settings: Settings, w3: Web3Client, deployment: Deployment, short_dir: Path
) -> None:
    settings = settings.model_copy(update={"run_jobs": False})
    with lab() as net, serving(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            # The operator stakes and registers the node on-chain with its agent key, then here.
            operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
            agent_key: LocalAccount = Account.create()
            node_id = await register_node(w3, deployment, operator, agent_key.address)
            registered = await http.post(
                "/v1/nodes",
                json={
                    "node_id": node_id,
                    "protocols": ["openvpn"],
                    "endpoint": f"{net.node_ip}:1194",
                    "country": "DE",
                },
                headers=await bearer(http, operator),
            )
            assert registered.status_code == 201, registered.text
            # OpenVPN's server is host 1 of its half (the upper) of each pool.
            pool4 = ipaddress.IPv4Network(registered.json()["ipv4_pool"])
            server_ipv4 = str(list(pool4.subnets())[1][1])

            async with running_agent(short_dir, url, node_id, agent_key, net.node_ns) as (
                agent,
                backend,
            ):
                await until(lambda: backend.health().server_running, 30, "the agent's server")
                await backend.wait_ready(30)

                # A subscriber pays on-chain, keeps its key, sends a CSR, gets a profile.
                subscriber = await paying_subscriber(w3, deployment)
                key = ec_key()
                issued = await http.post(
                    "/v1/configs",
                    json={"node_id": node_id, "protocol": "openvpn", "csr": make_csr(key)},
                    headers=await bearer(http, subscriber),
                )
                assert issued.status_code == 201, issued.text
                config: dict[str, Any] = issued.json()
                serial = config["cert_serial"]
                profile = config["config"]
                assert f"remote {net.node_ip} 1194" in profile
                client_ovpn = short_dir / "client.ovpn"
                client_ovpn.write_text(profile.replace(PLACEHOLDER, key_pem(key).strip()))
                client_ovpn.chmod(0o600)

                entry = backend.paths.clients / f"{serial}.conf"
                await until(entry.exists, 30, "the agent to admit the new peer")

                # The real client connects and pings the node through the tunnel.
                client_log = short_dir / "client.log"
                client = net.start(
                    net.client_ns, client_log, "openvpn", "--config", str(client_ovpn)
                )
                await until(lambda: logged(client_log, CONNECTED), 30, "the client to connect")
                ipv4, ipv6 = (a.split("/")[0] for a in config["address"])
                addresses = await net.run(net.client_ns, "ip", "-o", "addr", "show")
                assert f"inet {ipv4}/" in addresses.stdout  # its fixed address
                assert f"inet6 {ipv6}/" in addresses.stdout
                ping = await net.run(
                    net.client_ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", server_ipv4
                )
                assert ping.returncode == 0, ping.stdout
                pool6 = ipaddress.IPv6Network(registered.json()["ipv6_pool"])
                server_ipv6 = str(list(pool6.subnets())[1][1])
                ping6 = await net.run(
                    net.client_ns, "ping", "-6", "-c", "2", "-W", "2", server_ipv6
                )
                assert ping6.returncode == 0, ping6.stdout

                # The server's status, read by the backend, shows the client's traffic.
                async def counted() -> bool:
                    return any(
                        s.key == serial and s.rx_bytes > 0 and s.last_handshake_at
                        for s in await backend.stats()
                    )

                for _ in range(60):
                    if await counted():
                        break
                    await asyncio.sleep(0.1)
                assert await counted()

                # Revocation: the client is cut within seconds (HALT: it exits) ...
                revoked_at = time.monotonic()
                deleted = await http.delete(
                    f"/v1/configs/{config['id']}", headers=await bearer(http, subscriber)
                )
                assert deleted.status_code == 204, deleted.text
                await until(lambda: client.poll() is not None, 10, "the client to be cut off")
                cut_after = time.monotonic() - revoked_at
                print(f"\nrevoke -> client disconnected: {cut_after:.2f}s")
                assert cut_after < 10
                assert not entry.exists()
                assert logged(client_log, "server-pushed-halt") or logged(client_log, "Halt")
                lost = await net.run(net.client_ns, "ping", "-c", "1", "-W", "1", server_ipv4)
                assert lost.returncode != 0

                # ... the node's CRL lists the certificate ...
                ca = x509.load_pem_x509_certificate(backend.paths.ca.read_bytes())
                await until(
                    lambda: serial in crl_info(backend.paths.crl.read_text(), ca).revoked,
                    10,
                    "the fresh CRL",
                )

                # ... and it cannot come back: the TLS handshake fails on the CRL.
                server_log = backend.paths.log
                retry_log = short_dir / "client-again.log"
                net.start(net.client_ns, retry_log, "openvpn", "--config", str(client_ovpn))
                await until(
                    lambda: logged(server_log, "certificate revoked"), 30, "the CRL's refusal"
                )
                await asyncio.sleep(2)
                assert not logged(retry_log, CONNECTED)
                assert serial not in {s.key for s in await backend.stats()}
                assert agent.applied_revision is not None
