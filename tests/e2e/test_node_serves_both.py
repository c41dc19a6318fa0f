"""Outside in: a node serving WireGuard and OpenVPN at once carries subscribers' traffic to the
internet, set up only by `nodus-agent run`.

Namespaces: "node" (its endpoint 198.18.0.1 on lo, its uplink to "beyond", the default route
there), "beyond" (a host on the internet side: 203.0.113.2, no route to any tunnel pool), and
two subscribers' devices, one per protocol, each joined to the node by a veth. The test never
creates the WireGuard interface, turns on forwarding or installs NAT: `nodus-agent init`,
registration on-chain and with the real control plane, `nodus-agent pools`, then
`nodus-agent run` (its `ip`/`wg`/`nft`/`sysctl`/`openvpn` behind `ip netns exec node`). A
WireGuard device and an OpenVPN device then reach "beyond" at the same time, and "beyond" sees
the node's uplink address as the source of both (it has no route back to the pools, so an
answer at all needs the node's NAT). On SIGTERM the agent removes what it set up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.paths import REPO_ROOT
from control_plane.settings import Settings
from tests.control_plane.auth.conftest import bearer
from tests.e2e.conftest import needs_nft_and_openvpn, needs_tunnels
from tests.e2e.lab import Lab, ping, sh, stop_process
from tests.e2e.operator_cli import WalletHost, register_as_operator
from tests.e2e.stack import (
    AGENT_ENV,
    NODE_ENDPOINT,
    PLACEHOLDER,
    WG_PORT,
    ControlPlane,
    free_tcp_port,
    until,
)
from tests.support.builders import (
    ec_key,
    key_pem,
    make_csr,
    paying_subscriber,
    wg_keys,
)

pytestmark = [
    needs_tunnels,
    needs_nft_and_openvpn,
]

UPLINK_NODE, BEYOND = "203.0.113.1", "203.0.113.2"
UPLINK_NODE6, BEYOND6 = "2001:db8:113::1", "2001:db8:113::2"
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
        connection.close()
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """OpenVPN's state (a unix socket path holds at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="nds-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def agent_cli(*args: str) -> dict[str, object]:
    result = await sh(sys.executable, "-m", "node_agent", *args, "--json", seconds=60)
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


async def connect_from(namespace: str, port: int) -> bool:
    script = f"import socket; socket.create_connection(({BEYOND!r}, {port}), timeout=3).close()"
    result = await sh(
        "ip", "netns", "exec", namespace, sys.executable, "-c", script, check=False, seconds=10
    )
    return result.ok


async def test_one_node_carries_wireguard_and_openvpn_to_the_internet_at_once(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    short_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node_ns = await lab.namespace("node")
    beyond_ns = await lab.namespace("beyond")
    wg_ns = await lab.namespace("cwg")
    ovpn_ns = await lab.namespace("covpn")
    await sh("ip", "-n", node_ns, "addr", "add", f"{NODE_ENDPOINT}/32", "dev", "lo")
    await lab.veth(node_ns, f"{UPLINK_NODE}/24", beyond_ns, f"{BEYOND}/24")
    await sh("ip", "-n", node_ns, "route", "add", "default", "via", BEYOND)
    uplinks = (await sh("ip", "-n", node_ns, "-o", "link", "show", "type", "veth")).stdout
    uplink = uplinks.split(":")[1].strip().split("@")[0]
    beyond_if = (await sh("ip", "-n", beyond_ns, "-o", "link", "show", "type", "veth")).stdout
    beyond_link = beyond_if.split(":")[1].strip().split("@")[0]
    await sh("ip", "-n", node_ns, "addr", "add", f"{UPLINK_NODE6}/64", "dev", uplink, "nodad")
    await sh("ip", "-n", beyond_ns, "addr", "add", f"{BEYOND6}/64", "dev", beyond_link, "nodad")
    await sh("ip", "-n", node_ns, "-6", "route", "add", "default", "via", BEYOND6)
    for index, device_ns in ((1, wg_ns), (2, ovpn_ns)):
        await lab.veth(node_ns, f"198.18.{index}.1/24", device_ns, f"198.18.{index}.2/24")
        await sh("ip", "-n", device_ns, "route", "add", "default", "via", f"198.18.{index}.1")

    # The operator: init on the node host, the register line it prints on the wallet host,
    # then pools (README's "Run a node"). The agent process runs outside the node's namespace,
    # so its health answers on loopback.
    interface = lab.name("n")
    lab.interfaces.append(interface)
    wallet_host = WalletHost.of(settings, control_plane.url, lab.directory / "operator")
    registered = await register_as_operator(
        w3, deployment, wallet_host,
        config=lab.directory / "node" / "agent.toml",
        endpoint=f"{NODE_ENDPOINT}:{WG_PORT}",
        protocols="wireguard,openvpn",
        agent_control_plane_url=control_plane.url,
        interface=interface,
        init_options=(
            "--listen-port", str(WG_PORT),
            "--health-listen", f"127.0.0.1:{free_tcp_port()}", "--loopback-health",
        ),
    )  # fmt: skip
    node_id, config = registered.node_id, registered.config
    pool4 = ipaddress.IPv4Network(str(registered.pools["ipv4_pool"]))
    wg_half, ovpn_half = pool4.subnets(prefixlen_diff=1)

    # `nodus-agent run`: nothing of the node's network exists yet.
    assert not (await sh("ip", "-n", node_ns, "link", "show", interface, check=False)).ok
    log_path = lab.directory / "agent.log"
    log = log_path.open("ab")
    prefix = f"ip netns exec {node_ns}"
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node_agent", "run", "--config", str(config),
        stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT,
        env={
            **os.environ,
            **AGENT_ENV,
            "NODUS_AGENT_WIREGUARD_COMMAND_PREFIX": prefix,
            "NODUS_AGENT_OPENVPN_ENABLED": "true",
            "NODUS_AGENT_OPENVPN_COMMAND_PREFIX": prefix,
            "NODUS_AGENT_OPENVPN_STATE_DIR": str(short_dir / "ovpn"),
            "NODUS_AGENT_OPENVPN_STATUS_INTERVAL_SECONDS": "1",
            # The lab's node has several addresses: answer from the endpoint's (one public
            # address, as most hosts have, needs no `listen`).
            "NODUS_AGENT_OPENVPN_LISTEN": NODE_ENDPOINT,
        },
    )  # fmt: skip
    log.close()
    lab.processes.append(agent)
    state_dir = config.parent / "state"

    def synced() -> bool:
        assert agent.returncode is None, log_path.read_text()
        status_file = state_dir / "status.json"
        if not status_file.exists():
            return False
        status = json.loads(status_file.read_text())
        return status.get("revision") is not None and status.get("fail_static") is False

    await until(synced, 60, "the agent's first sync")

    # The beyond host records who connects.
    seen = lab.directory / "seen.txt"
    port = free_tcp_port()
    listener = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", beyond_ns, sys.executable, "-c", LISTENER, BEYOND, str(port),
        str(seen), start_new_session=True,
    )  # fmt: skip
    lab.processes.append(listener)

    async with httpx.AsyncClient(base_url=control_plane.url, timeout=30) as http:
        # A WireGuard device: only "beyond" goes through its tunnel (the endpoint stays direct).
        wg_subscriber = await paying_subscriber(w3, deployment)
        keys = wg_keys()
        issued = await http.post(
            "/v1/configs",
            json={"node_id": node_id, "protocol": "wireguard", "public_key": keys.public},
            headers=await bearer(http, wg_subscriber),
        )
        assert issued.status_code == 201, issued.text
        wg_config = issued.json()
        assert ipaddress.ip_interface(wg_config["address"][0]).ip in wg_half
        # An OpenVPN device: its key stays here, the profile redirects everything.
        ovpn_subscriber = await paying_subscriber(w3, deployment)
        key = ec_key()
        issued = await http.post(
            "/v1/configs",
            json={"node_id": node_id, "protocol": "openvpn", "csr": make_csr(key)},
            headers=await bearer(http, ovpn_subscriber),
        )
        assert issued.status_code == 201, issued.text
        ovpn_config = issued.json()
        assert ipaddress.ip_interface(ovpn_config["address"][0]).ip in ovpn_half

    device_if = await lab.wireguard_go(wg_ns, "c")
    plain = lab.directory / "device.conf"
    plain.write_text(wg_config["config"].replace(PLACEHOLDER, keys.private))
    plain.chmod(0o600)
    stripped = lab.directory / "device.stripped"
    stripped.write_text((await sh("wg-quick", "strip", str(plain))).stdout)
    stripped.chmod(0o600)
    await sh("ip", "netns", "exec", wg_ns, "wg", "setconf", device_if, str(stripped))
    await sh("ip", "-n", wg_ns, "addr", "add", wg_config["address"][0], "dev", device_if)
    await sh("ip", "-n", wg_ns, "link", "set", device_if, "up")
    await sh("ip", "-n", wg_ns, "route", "add", f"{BEYOND}/32", "dev", device_if)
    await sh("ip", "-n", wg_ns, "addr", "add", wg_config["address"][1], "dev", device_if)
    await sh("ip", "-n", wg_ns, "-6", "route", "add", f"{BEYOND6}/128", "dev", device_if)

    profile = short_dir / "client.ovpn"
    profile.write_text(ovpn_config["config"].replace(PLACEHOLDER, key_pem(key).strip()))
    profile.chmod(0o600)
    client_log = lab.directory / "openvpn-client.log"
    with client_log.open("ab") as out:
        client = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ovpn_ns, "openvpn", "--config", str(profile),
            stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    lab.processes.append(client)
    started = time.monotonic()
    try:
        await until(
            lambda: "Initialization Sequence Completed" in client_log.read_text(errors="replace"),
            60,
            "the OpenVPN client to connect",
        )
    except AssertionError as exc:
        server_log = short_dir / "ovpn" / "openvpn.log"
        logs = [p.read_text(errors="replace")[-2500:] for p in (client_log, log_path)]
        if server_log.exists():
            logs.append(server_log.read_text(errors="replace")[-2500:])
        raise AssertionError("\n---\n".join([str(exc), *logs])) from exc

    # Both at once: pings and a TCP connection each, side by side.
    await until(lambda: ping(wg_ns, BEYOND, wait=0.5), 30, "WireGuard to reach beyond", step=0)
    both = await asyncio.gather(
        ping(wg_ns, BEYOND, count=5, wait=1),
        ping(ovpn_ns, BEYOND, count=5, wait=1),
        connect_from(wg_ns, port),
        connect_from(ovpn_ns, port),
        ping(wg_ns, BEYOND6, count=3, wait=1),  # NAT66 too: beyond has no route to the ULA
        ping(ovpn_ns, BEYOND6, count=3, wait=1),
    )
    took = time.monotonic() - started
    assert list(both) == [True] * 6, log_path.read_text()[-3000:]
    with capsys.disabled():
        print(f"\n[e2e] both protocols reach beyond {took:.2f}s after the OpenVPN client start")
    sources = await until(lambda: seen.exists() and seen.read_text().split(), 5, "the listener")
    assert sources
    assert set(seen.read_text().split()) == {UPLINK_NODE}  # masqueraded to the node's address

    # Each protocol has its own connected route: no reply goes into the other's interface.
    routes = (await sh("ip", "-n", node_ns, "-4", "route", "show")).stdout
    assert f"{wg_half} dev {interface}" in routes
    assert f"{ovpn_half} dev nodus-ovpn0" in routes

    # selftest against the real control plane: the agent's network passes, the registration
    # signs in; health is on loopback here (the agent process is outside the namespace).
    checked = await sh(
        "env", f"NODUS_AGENT_WIREGUARD_COMMAND_PREFIX={prefix}", "NODUS_AGENT_OPENVPN_ENABLED=true",
        f"NODUS_AGENT_OPENVPN_STATE_DIR={short_dir / 'ovpn'}",
        sys.executable, "-m", "node_agent", "selftest", "--config", str(config), "--json",
        check=False, seconds=60,
    )  # fmt: skip
    found = {c["name"]: c["reason"] for c in json.loads(checked.stdout)["checks"]}
    assert {k: found[k] for k in ("interface", "forwarding", "nat", "registration")} == {
        "interface": "ok",
        "forwarding": "ok",
        "nat": "ok",
        "registration": "ok",
    }, checked.stdout
    assert found["health"] == "health_loopback"
    # Until the control plane has the probe route: "too old"; then the prober's reason code.
    assert found["probe"] not in ("", "probe_refused"), checked.stdout
    with capsys.disabled():
        print(f"[e2e] selftest probe check: {found['probe']}")

    # SIGTERM: the agent removes what it set up.
    agent.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        await agent.wait()
    await stop_process(client)
    assert not (await sh("ip", "-n", node_ns, "link", "show", interface, check=False)).ok
    tables = await sh("ip", "netns", "exec", node_ns, "nft", "list", "tables")
    assert "nodus_agent" not in tables.stdout
    forwarding = await sh("ip", "netns", "exec", node_ns, "sysctl", "-n", "net.ipv4.ip_forward")
    assert forwarding.stdout.strip() == "0"
    assert not (await sh("ip", "-n", node_ns, "link", "show", "nodus-ovpn0", check=False)).ok
    logged = log_path.read_text()
    assert "stopped the OpenVPN server" in logged
