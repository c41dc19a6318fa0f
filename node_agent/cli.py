"""`nodus-agent`: what a node operator runs next to WireGuard/OpenVPN.

nodus-agent init    make the agent key and the WireGuard keys, write the config
nodus-agent pools   after registering the node: fetch its device pools and pin them in the config
nodus-agent run     keep the node's peers in step with the control plane (needs the pools)
nodus-agent status  what the running agent last recorded (verdict, revision, peers, errors)
nodus-agent selftest  checks network, health on the endpoint, registration, one probe now
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from node_agent import __version__
from node_agent.cli_common import ConfigPath, console
from node_agent.cli_common import fail as _fail
from node_agent.client import ControlPlaneError
from node_agent.config import (
    DEFAULT_CONFIG_PATH,
    PASSPHRASE_ENV,
    ConfigError,
    load_config,
    with_metrics_listen,
    with_network_overrides,
)
from node_agent.httpd import ListenFailed
from node_agent.init_command import init
from node_agent.keys import KeyFileError, load_agent_key
from node_agent.state import StateStore

app = typer.Typer(help="Nodus node agent.", no_args_is_help=True)
app.command()(init)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"nodus-agent {__version__}")


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
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Serve Prometheus metrics on GET http://HOST:PORT/metrics, e.g. "
            "127.0.0.1:9464 or [::]:9464 (never the health port). Overrides metrics.listen "
            "and NODUS_AGENT_METRICS_LISTEN; default: off.",
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
        loaded = with_metrics_listen(loaded, metrics_listen)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    configure_logging(loaded.log_level)
    try:
        asyncio.run(run_agent(loaded))
    except (KeyFileError, ListenFailed) as exc:
        raise _fail(str(exc)) from exc


@app.command()
def selftest(
    config: ConfigPath = DEFAULT_CONFIG_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check what the node needs to be probed and scored: the interface, forwarding, NAT, the
    signed health answer on the endpoint, the registration, and one probe by the control plane
    now. Prints each verdict with its reason code, the score it allows and what to fix first;
    exits 1 when a check fails. Run it as the agent runs (root or CAP_NET_ADMIN).

    Example: nodus-agent selftest --config /etc/nodus-agent/agent.toml
    """
    from node_agent import selftest as checks

    try:
        loaded = load_config(config.expanduser())
        account = load_agent_key(loaded.agent_key_file, os.environ.get(PASSPHRASE_ENV) or None)
    except (ConfigError, KeyFileError) as exc:
        raise _fail(str(exc)) from exc
    results = asyncio.run(checks.run_selftest(loaded, account))
    report = checks.as_json(results)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        colours = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
        for check in results:
            colour = colours.get(check.level, "white")
            console.print(
                f"{check.name:<13}[{colour}]{check.level:<5}[/{colour}] {check.reason:<26}"
                f"{escape(check.detail)}  [dim](score: {', '.join(check.components)})[/dim]",
                highlight=False,
            )
        total, parts = checks.score(results)
        shown = ", ".join(f"{name} {part}/{checks.WEIGHTS[name]}" for name, part in parts.items())
        console.print(f"\nscore at most {total}% ({shown})", highlight=False)
        first = checks.fix_first(results)
        if first is not None:
            console.print(
                f"fix first: {first.name} ({first.reason}): {escape(first.fix)}", highlight=False
            )
    if not report["ok"]:
        raise typer.Exit(1)


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


def _verdict_lines(document: dict[str, Any]) -> list[str]:
    """`verdict  fail (interface_missing): nodus0 does not exist` and its fix."""
    if "reason" not in document:
        return []
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}.get(str(document.get("verdict")))
    level = escape(str(document.get("verdict")))
    shown = f"[{colour}]{level}[/{colour}]" if colour else level
    detail = document.get("detail")
    lines = [
        f"  verdict      {shown} ({escape(str(document['reason']))})"
        + (f": {escape(str(detail))}" if detail else "")
    ]
    if document.get("verdict") != "ok":
        lines.append(f"  fix          {escape(str(document.get('fix')))}")
    return lines


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
        *_verdict_lines(document),
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
