"""`nodus-agent`: what a node operator runs next to WireGuard/OpenVPN.

nodus-agent init    make the agent key and the WireGuard keys, write the config
nodus-agent pools   after registering the node: fetch its device pools and pin them in the config
nodus-agent run     keep the node's peers in step with the control plane (needs the pools)
nodus-agent status  what the running agent last recorded (revision, peers, sync, errors)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_utils.address import is_address
from rich.console import Console
from rich.markup import escape

from node_agent import __version__
from node_agent.client import ControlPlaneError
from node_agent.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    PASSPHRASE_ENV,
    ConfigError,
    load_config,
    with_network_overrides,
)
from node_agent.keys import (
    KeyFileError,
    create_agent_key,
    generate_wireguard_private_key,
    load_agent_key,
    node_id_of,
    wireguard_public_key,
    write_secret,
)
from node_agent.state import StateStore

app = typer.Typer(help="Nodus node agent.", no_args_is_help=True)
console = Console(soft_wrap=True)
errors = Console(stderr=True)
SYSTEM_STATE_DIR = Path("/var/lib/nodus-agent")

ConfigPath = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help="The agent's TOML config (env NODUS_AGENT_CONFIG).",
    ),
]


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"nodus-agent {__version__}")


@app.command()
def init(
    config: ConfigPath = DEFAULT_CONFIG_PATH,
    node_id: Annotated[
        str | None,
        typer.Option(help="The id of an already registered node (bytes32), to replace its agent."),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            help="The operator wallet that will register a new node: its id is derived from "
            "this address and a fresh salt (NodeRegistry.nodeIdOf)."
        ),
    ] = None,
    control_plane_url: Annotated[str, typer.Option()] = "http://127.0.0.1:8000",
    interface: Annotated[str, typer.Option(help="WireGuard interface name.")] = "nodus0",
    listen_port: Annotated[int, typer.Option(help="WireGuard UDP port.")] = 51820,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Default: /var/lib/nodus-agent with the default config, else a `state` "
            "directory next to the config."
        ),
    ] = None,
    health_listen: Annotated[
        str, typer.Option(help="host:port of GET /health; empty disables it.")
    ] = "127.0.0.1:9810",
    ipv4_pool: Annotated[str, typer.Option(help="The node's IPv4 pool, if known.")] = "",
    ipv6_pool: Annotated[str, typer.Option(help="The node's IPv6 pool, if known.")] = "",
    force: Annotated[bool, typer.Option(help="Overwrite existing keys and config.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Make the agent's Ethereum key (an encrypted keystore if NODUS_AGENT_PASSPHRASE is set,
    else a 0600 raw key file) and the WireGuard key pair, write the config, and print what
    the operator registers on-chain."""
    config = config.expanduser().resolve()
    if config.exists() and not force:
        raise _fail(f"{config} exists (use --force to overwrite it and make new keys)")
    salt: str | None = None
    if node_id is None:
        if operator is None or not is_address(operator):
            raise _fail(
                "give --operator ADDRESS (the wallet that will register a new node; the node id "
                "is derived from it) or --node-id (a node already registered)"
            )
        salt_bytes = secrets.token_bytes(32)
        salt = "0x" + salt_bytes.hex()
        node_id = node_id_of(operator, salt_bytes)
    node_id = node_id.lower()
    directory = config.parent
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    agent_key = directory / ("agent-key.json" if passphrase else "agent-key")
    wg_key = directory / "wireguard.key"
    if state_dir is None:
        state_dir = SYSTEM_STATE_DIR if config == DEFAULT_CONFIG_PATH else directory / "state"
    state = state_dir.expanduser().resolve()
    text = _config_text(
        node_id=node_id,
        url=control_plane_url,
        state_dir=state,
        agent_key=agent_key,
        wg_key=wg_key,
        interface=interface,
        listen_port=listen_port,
        health_listen=health_listen,
        ipv4_pool=ipv4_pool,
        ipv6_pool=ipv6_pool,
    )
    existing = [str(path) for path in (agent_key, wg_key) if path.exists()]
    if existing and not force:
        raise _fail(f"{', '.join(existing)} exist(s) (use --force to make new keys)")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        address = create_agent_key(agent_key, passphrase, overwrite=force)
        private = generate_wireguard_private_key()
        write_secret(wg_key, private + "\n", overwrite=force)
        config.write_text(text)
        load_config(config, environ={})  # what we wrote must load
    except (ConfigError, KeyFileError, OSError) as exc:
        raise _fail(str(exc)) from exc
    public = wireguard_public_key(private)
    result = {
        "config": str(config),
        "node_id": node_id,
        "salt": salt,
        "agent_address": address,
        "agent_key_file": str(agent_key),
        "agent_key_encrypted": passphrase is not None,
        "wireguard_public_key": public,
        "wireguard_private_key_file": str(wg_key),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    console.print(f"config                {config}", highlight=False)
    console.print(f"node id               {node_id}", highlight=False)
    console.print(
        f"agent address         {address}  "
        f"({'encrypted keystore' if passphrase else 'raw key, 0600'}: {agent_key})",
        highlight=False,
    )
    console.print(f"WireGuard public key  {public}", highlight=False)
    step_one = (
        f"  1. NodeRegistry.register({salt}, <stake>, {address}, <metadataURI>)\n"
        f"     from {operator} (the salt makes node id {node_id});\n"
        if salt is not None
        else f"  1. NodeRegistry.setAgent({node_id}, {address});\n"
    )
    console.print(
        "\nNext, with the operator's wallet:\n"
        f"{step_one}"
        "  2. POST /v1/nodes with this node id and wireguard_public_key;\n"
        f"  3. nodus-agent pools --config {config}  (fetches the node's pools and pins them;\n"
        "     the agent refuses any peer outside them, and refuses to run without them);\n"
        f"  4. nodus-agent run --config {config}",
        highlight=False,
    )


def _config_text(
    *,
    node_id: str,
    url: str,
    state_dir: Path,
    agent_key: Path,
    wg_key: Path,
    interface: str,
    listen_port: int,
    health_listen: str,
    ipv4_pool: str,
    ipv6_pool: str,
) -> str:
    def q(value: object) -> str:
        return json.dumps(str(value))  # a TOML basic string is a JSON string

    return f"""# nodus-agent configuration (every option: node_agent/README.md).
# Environment overrides: NODUS_AGENT_<SECTION>_<NAME>, e.g. NODUS_AGENT_WIREGUARD_INTERFACE.
node_id = {q(node_id)}
state_dir = {q(state_dir)}
agent_key_file = {q(agent_key)}
log_level = "INFO"

[control_plane]
url = {q(url)}
poll_wait_seconds = 30
request_timeout_seconds = 10.0
retry_attempts = 3
backoff_base_seconds = 0.5
backoff_cap_seconds = 30.0
breaker_failures = 5
breaker_reset_seconds = 30.0

[reports]
heartbeat_seconds = 15.0
metrics_seconds = 60.0

[expiry]
check_seconds = 30.0

[health]
listen = {q(health_listen)}

[pools]
ipv4 = {q(ipv4_pool)}
ipv6 = {q(ipv6_pool)}

[wireguard]
enabled = true
interface = {q(interface)}
listen_port = {listen_port}
private_key_file = {q(wg_key)}
configure_interface = true
command_prefix = []
wg_binary = "wg"
max_peers_per_command = 1000
"""


@app.command()
def pools(
    config: ConfigPath = DEFAULT_CONFIG_PATH,
    force: Annotated[
        bool, typer.Option(help="Replace pools already pinned (the node was registered again).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fetch the node's device pools from the control plane (signing in with the agent key, so
    the node must be registered on-chain and here first) and pin them in the config's [pools].
    The agent refuses peers outside them and will not run without them."""
    from node_agent.pools import PoolsError, fetch_pools, pin_pools

    path = config.expanduser()
    try:
        loaded = load_config(path)
        account = load_agent_key(loaded.agent_key_file, os.environ.get(PASSPHRASE_ENV) or None)
        fetched = asyncio.run(fetch_pools(loaded, account))
        changed = pin_pools(path, fetched, force=force)
    except (ConfigError, KeyFileError, PoolsError, ControlPlaneError) as exc:
        raise _fail(f"cannot pin the node's pools: {exc}") from exc
    result = {
        "config": str(path),
        "node_id": loaded.node_id,
        "ipv4_pool": str(fetched.ipv4),
        "ipv6_pool": str(fetched.ipv6),
        "changed": changed,
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    state = "pinned" if changed else "already pinned"
    console.print(
        f"pools {state} in {path}: {fetched.ipv4}, {fetched.ipv6}\n"
        f"next: nodus-agent run --config {path}",
        highlight=False,
    )


@app.command()
def run(
    config: ConfigPath = DEFAULT_CONFIG_PATH,
    egress_interface: Annotated[
        str | None,
        typer.Option(help="Masquerade out of this interface (default: the default route's)."),
    ] = None,
    nat: Annotated[
        bool | None,
        typer.Option("--nat/--no-nat", help="Install NAT for the node's pools (default: on)."),
    ] = None,
    keep_network: Annotated[
        bool | None,
        typer.Option(
            "--keep-network/--remove-network",
            help="On stop, leave the interface, forwarding, NAT and OpenVPN running.",
        ),
    ] = None,
    manage_network: Annotated[
        bool | None,
        typer.Option(
            "--manage-network/--no-manage-network",
            help="Set up the interface, forwarding and NAT (default: on).",
        ),
    ] = None,
) -> None:
    """Set up the node's network (WireGuard interface, forwarding, NAT), then keep its peers in
    step with the control plane until SIGTERM/SIGINT; on stop, remove what it set up unless
    --keep-network. Options override the config's [network] section.

    Example: nodus-agent run --config /etc/nodus-agent/agent.toml --egress-interface eth0
    """
    from node_agent.pools import require_pools
    from node_agent.runner import configure_logging, run_agent

    try:
        loaded = load_config(config.expanduser())
        require_pools(loaded)
        loaded = with_network_overrides(
            loaded,
            egress_interface=egress_interface,
            nat=nat,
            keep_network=keep_network,
            manage=manage_network,
        )
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    configure_logging(loaded.log_level)
    try:
        asyncio.run(run_agent(loaded))
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def status(
    config: ConfigPath = DEFAULT_CONFIG_PATH,
    state_dir: Annotated[
        Path | None, typer.Option(help="Read this state directory instead of the config's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print status.json as it is.")] = False,
) -> None:
    """What the agent last recorded: revision, peers, last sync, fail-static, errors."""
    if state_dir is None:
        try:
            state_dir = load_config(config.expanduser()).state_dir
        except ConfigError as exc:
            raise _fail(str(exc)) from exc
    document = StateStore(state_dir).load_status()
    if document is None:
        raise _fail(f"no status in {state_dir} (has the agent run yet?)")
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    for line in render_status(document, datetime.now(UTC)):
        console.print(line, highlight=False)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ago(value: object, now: datetime) -> str:
    if not isinstance(value, str):
        return "never"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        span = f"{seconds}s"
    elif seconds < 7200:
        span = f"{seconds // 60}m"
    else:
        span = f"{seconds // 3600}h"
    return f"{span} ago ({moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"


def render_status(document: dict[str, Any], now: datetime) -> list[str]:
    """status.json as lines for a human (rich markup; every recorded value is escaped)."""

    def e(value: object) -> str:
        return escape(str(value))

    def ago(key: str) -> str:
        return e(_ago(document.get(key), now))

    running = bool(document.get("running")) and _alive(document.get("pid"))
    agent = (
        f"[green]running[/green] (pid {e(document.get('pid'))}, started {ago('started_at')})"
        if running
        else f"[red]not running[/red] (last update {ago('updated_at')})"
    )
    lines = [
        f"nodus-agent {e(document.get('version', '?'))}, node {e(document.get('node_id', '?'))}",
        f"  agent        {agent}",
        f"  health       {e(document.get('health', '?'))}",
        f"  revision     {e(document.get('revision'))} (applied {ago('applied_at')})",
    ]
    by_protocol = document.get("peers_by_protocol") or {}
    split = ", ".join(f"{e(name)} {e(count)}" for name, count in by_protocol.items() if count)
    lines.append(f"  peers        {e(document.get('peers', 0))}" + (f" ({split})" if split else ""))
    if document.get("next_expiry"):
        lines.append(f"  next expiry  {e(document['next_expiry'])}")
    lines.append(
        f"  last sync    {ago('last_sync_at')} with {e(document.get('control_plane', '?'))}"
    )
    if document.get("fail_static"):
        why = (
            f" (control plane unreachable since {ago('unreachable_since')}: "
            f"{e(document.get('unreachable_reason'))})"
            if document.get("unreachable_since")
            else " (not confirmed by the control plane since the agent started)"
        )
        lines.append(
            "  fail-static  [yellow]YES[/yellow]: serving the last known set; expired peers "
            "are still removed" + why
        )
    else:
        lines.append("  fail-static  no")
    rejected = document.get("rejected")
    if isinstance(rejected, dict):
        lines.append(
            f"  rejected     [red]revision {e(rejected.get('revision'))}[/red]: "
            f"{e(rejected.get('reason'))}"
        )
    if document.get("apply_error"):
        lines.append(f"  apply error  [red]{e(document['apply_error'])}[/red]")
    lines.append(f"  heartbeat    {ago('last_heartbeat_at')}; metrics {ago('last_metrics_at')}")
    recent = document.get("errors") or []
    if recent:
        lines.append(f"  errors       {len(recent)} recent, newest last:")
        lines += [f"    {e(entry.get('at'))}  {e(entry.get('message'))}" for entry in recent[-5:]]
    else:
        lines.append("  errors       none")
    return lines


@app.callback()
def main() -> None:
    """Nodus node agent: applies the paying peers to WireGuard/OpenVPN and reports."""
