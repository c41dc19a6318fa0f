"""The demo node of `scripts/dev`: one WireGuard node in a network namespace, registered the
operator's way (README "Run a node": `nodus-agent init`, the `nodus node register ...` line it
prints, `nodus-agent pools`), its agent run by scripts/dev inside the namespace.

    python scripts/dev_node.py check                    why not, on stdout; exit 1 (else 0)
    python scripts/dev_node.py network API_PORT         the namespace and its veth to this host
    python scripts/dev_node.py proxy API_PORT           the API on the veth's host address
    python scripts/dev_node.py register API_PORT RPC_URL DEPLOYMENTS_DIR STATE_DIR
    python scripts/dev_node.py wait API_PORT STATE_DIR AGENT_PID

Everything is named after the API port, so two stacks on one machine never share a namespace,
an interface or an address: namespace `nodus-dev-PORT`, a /30 in 198.18.0.0/15 (benchmarking
addresses, never on a LAN). The host keeps .1, the node's endpoint is .2:51820. The agent
reaches the control plane (which listens on 127.0.0.1 only) through `proxy`, which listens on
the host's .1, an address only that namespace can reach. `register` re-runs the saved register
line every time: each step already done is skipped, and a fresh chain gets the node again."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
WG_PORT = 51820
OPERATOR_ACCOUNT = 9  # anvil's dev account 9 runs the demo node (.nodus/dev.json)
TOOLS = ("ip", "wg")


@dataclass(frozen=True, slots=True)
class DemoNode:
    api_port: int

    @property
    def namespace(self) -> str:
        return f"nodus-dev-{self.api_port}"

    @property
    def host_link(self) -> str:
        return f"ndev{self.api_port}h"

    @property
    def node_link(self) -> str:
        return f"ndev{self.api_port}n"

    @property
    def interface(self) -> str:  # wireguard-go's socket is machine-wide: a unique name
        return f"ndwg{self.api_port}"

    @property
    def _base(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address("198.18.0.0") + 4 * (self.api_port % 32768)

    @property
    def host_address(self) -> str:
        return str(self._base + 1)

    @property
    def node_address(self) -> str:
        return str(self._base + 2)

    @property
    def agent_api_url(self) -> str:
        return f"http://{self.host_address}:{self.api_port}"


def why_not() -> str | None:
    """Why this machine cannot run the demo node, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "not running as root (network namespaces and WireGuard need it)"
    if not Path("/dev/net/tun").exists() and not Path("/sys/module/wireguard").exists():
        return "no /dev/net/tun for wireguard-go and no WireGuard kernel module"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install iproute2 wireguard-tools)"
    if not Path("/sys/module/wireguard").exists() and shutil.which("wireguard-go") is None:
        return "neither the WireGuard kernel module nor wireguard-go (apt-get install wireguard-go)"
    return None


def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO_ROOT)  # noqa: S603
    if check and done.returncode != 0:
        raise SystemExit(f"{shlex.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def network(node: DemoNode) -> None:
    """A fresh namespace (one left by a killed run is replaced) with a veth to this host and a
    default route through it: the agent finds its egress there and installs NAT itself."""
    if node.namespace in run("ip", "netns", "list"):
        run("ip", "netns", "del", node.namespace)
    run("ip", "netns", "add", node.namespace)
    run("ip", "-n", node.namespace, "link", "set", "lo", "up")
    run("ip", "link", "del", node.host_link, check=False)
    run(
        "ip", "link", "add", node.host_link, "type", "veth",
        "peer", "name", node.node_link, "netns", node.namespace,
    )  # fmt: skip
    run("ip", "addr", "add", f"{node.host_address}/30", "dev", node.host_link)
    run("ip", "link", "set", node.host_link, "up")
    run("ip", "-n", node.namespace, "addr", "add", f"{node.node_address}/30", "dev", node.node_link)
    run("ip", "-n", node.namespace, "link", "set", node.node_link, "up")
    run("ip", "-n", node.namespace, "route", "add", "default", "via", node.host_address)


async def proxy(node: DemoNode) -> None:
    """host_address:API_PORT -> 127.0.0.1:API_PORT, until killed."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", node.api_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, node.host_address, node.api_port)
    async with server:
        await server.serve_forever()


def register(node: DemoNode, rpc_url: str, deployments_dir: str, state_dir: Path) -> str:
    """init (once per API port and chain URL), the register line it printed, pools; the node id."""
    directory = state_dir / "dev-node"
    config, saved = directory / "agent.toml", directory / "init.json"
    made_for = {"api_port": node.api_port, "rpc_url": rpc_url}
    dev = json.loads((state_dir / "dev.json").read_text())
    operator = dev["accounts"][OPERATOR_ACCOUNT]
    if not saved.exists() or json.loads(saved.read_text()).get("made_for") != made_for:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        made = run(
            PYTHON, "-m", "node_agent", "init", "--config", str(config), "--force",
            "--operator", operator["address"],
            "--endpoint", f"{node.node_address}:{WG_PORT}", "--country", "DE",
            "--protocols", "wireguard", "--control-plane-url", node.agent_api_url,
            "--interface", node.interface, "--json",
        )  # fmt: skip
        answer = json.loads(made)
        saved.write_text(json.dumps({**answer, "made_for": made_for}, indent=2))
    init = json.loads(saved.read_text())
    words = shlex.split(init["register_command"])
    env = {
        **os.environ,
        "NODUS_PRIVATE_KEY": operator["private_key"],
        "NODUS_API_URL": f"http://127.0.0.1:{node.api_port}",
        "NODUS_RPC_URL": rpc_url,
        "NODUS_DEPLOYMENTS_DIR": deployments_dir,
        "XDG_CONFIG_HOME": str(directory / "xdg"),  # the operator's sign-in, not the user's
    }
    env.pop("NODUS_KEY_FILE", None)
    sys.stderr.write(run(PYTHON, "-m", "nodus_cli", *words[1:], env=env))
    run(PYTHON, "-m", "node_agent", "pools", "--config", str(config), "--json")
    return str(init["node_id"])


def wait(node: DemoNode, state_dir: Path, agent_pid: int, seconds: float = 90) -> None:
    """Until the control plane lists the node online (its agent's heartbeat arrived)."""
    init = json.loads((state_dir / "dev-node" / "init.json").read_text())
    url = f"http://127.0.0.1:{node.api_port}/v1/nodes/{init['node_id']}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{agent_pid}").exists():
            raise SystemExit("the demo node's agent exited")
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if json.load(response).get("online"):
                return
        time.sleep(1)
    raise SystemExit(f"the demo node was not online after {seconds:.0f} s")


def main(argv: list[str]) -> None:
    command, *rest = argv or ["check"]
    if command == "check":
        reason = why_not()
        if reason:
            print(reason)
            raise SystemExit(1)
        return
    node = DemoNode(int(rest[0]))
    if command == "network":
        network(node)
    elif command == "proxy":
        asyncio.run(proxy(node))
    elif command == "register":
        print(register(node, rest[1], rest[2], Path(rest[3])))
    elif command == "wait":
        wait(node, Path(rest[1]), int(rest[2]))
    elif command == "names":  # for scripts/dev: NAMESPACE NODE_ADDRESS
        print(node.namespace, node.node_address)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
