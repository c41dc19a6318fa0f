"""`nodus up`: from a funded wallet to a proven tunnel in one command."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from nodus_cli.connect.api import SubscriberApi
from nodus_cli.connect.choose import best_node, host_of
from nodus_cli.connect.payment import ensure_paid
from nodus_cli.connect.tunnel_up import bring_up_and_prove
from nodus_cli.support.chain import run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import UsageError, console, err_console
from nodus_cli.support.paths import write_private
from nodus_cli.support.session import ApiSession
from nodus_cli.tunnel import openvpn, qr, wgconf
from nodus_cli.tunnel.state import StateStore
from nodus_cli.tunnel.system import is_root

_INTERFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_NODE_ID = re.compile(r"0x[0-9a-fA-F]{64}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
PROTOCOLS: Final = ("wireguard", "openvpn")

EPILOG = """Examples:

  nodus up --subscribe 1                  # pay a month if needed, best node, prove the tunnel
  nodus up --country DE --kill-switch     # only German nodes; nothing leaks if the tunnel drops
  nodus up --protocol openvpn --no-dns
  nodus up --config-only phone.conf --qr  # a config for another device, shown as a QR code

Exit codes: 0 connected, 2 bad usage, 3 payment needed, 4 chain or API unreachable,
5 the tunnel failed. `nodus down` undoes everything `up` did."""


@shared_options("api_url", "rpc_url", "deployments_dir", "key_file", "as_json")
def up(
    node: Annotated[str | None, typer.Option("--node", help="Node id (0x + 64 hex).")] = None,
    country: Annotated[str | None, typer.Option("--country", help="ISO country code.")] = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="wireguard or openvpn.")
    ] = "wireguard",
    interface: Annotated[
        str, typer.Option("--interface", help="Tunnel interface name.")
    ] = "nodus0",
    subscribe: Annotated[
        int | None, typer.Option("--subscribe", min=1, max=36, help="Pay MONTHS if unpaid.")
    ] = None,
    kill_switch: Annotated[
        bool, typer.Option("--kill-switch", help="Drop all traffic outside the tunnel.")
    ] = False,
    no_dns: Annotated[bool, typer.Option("--no-dns", help="Leave /etc/resolv.conf alone.")] = False,
    show_qr: Annotated[bool, typer.Option("--qr", help="Print the config as a QR code.")] = False,
    qr_png: Annotated[Path | None, typer.Option("--qr-png", help="Write the QR as a PNG.")] = None,
    config_only: Annotated[
        Path | None, typer.Option("--config-only", help="Write the config here; no tunnel.")
    ] = None,
    *,
    options: Options,
) -> None:
    """Connect: sign in, pay if asked, pick the best node, make keys here, bring the tunnel up
    and prove it carries traffic (GET /v1/whoami through it answers the node's address)."""
    if node is not None and country is not None:
        raise_usage("--node and --country exclude each other")
    if protocol not in PROTOCOLS:
        raise_usage("--protocol is wireguard or openvpn")
    if not _INTERFACE.fullmatch(interface):
        raise_usage("--interface: 1-15 letters, digits, '_', '.', '-'")
    if node is not None and not _NODE_ID.fullmatch(node):
        raise_usage("--node is 0x followed by 64 hex digits")
    if country is not None and not _COUNTRY.fullmatch(country):
        raise_usage("--country is a two-letter ISO code")
    if (show_qr or qr_png) and protocol != "wireguard":
        raise_usage("--qr and --qr-png are for WireGuard configs")

    async def main() -> None:
        started = time.monotonic()
        store = StateStore()
        if config_only is None and is_root() and store.load() is not None:
            raise UsageError("a tunnel is up already: run `nodus down` first")
        async with ApiSession.open(options.api_url, options.key_file) as session:
            api = SubscriberApi(session)
            expires = await _prepare(api, subscribe, options)
            chosen = await api.node(node) if node else await _pick(api, country, protocol)
            issued, text = await _issue(api, chosen["id"], protocol)
        target = config_only or store.directory / f"{interface}.{_suffix(protocol)}"
        write_private(target, text)
        if show_qr:
            console.print(qr.terminal(text))
        if qr_png is not None:
            qr.write_png(text, qr_png)
            err_console.print(f"QR code written to {qr_png}")
        summary: dict[str, Any] = {
            "node": chosen["id"], "endpoint": chosen["endpoint"], "country": chosen.get("country"),
            "protocol": protocol, "addresses": issued["address"], "config": str(target),
            "config_id": issued["id"], "expires_at": issued.get("expires_at") or expires,
        }  # fmt: skip
        if config_only is not None or not is_root():
            summary["run"] = _manual_command(protocol, target)
            _report(summary, options.as_json, connected=False)
            return
        proven = await bring_up_and_prove(
            store, summary, interface, target, options.api_url, options.rpc_url, kill_switch,
            not no_dns,
        )  # fmt: skip
        summary |= proven
        summary["seconds"] = round(time.monotonic() - started, 2)
        _report(summary, options.as_json, connected=True)

    run(main)


def raise_usage(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


async def _prepare(api: SubscriberApi, months: int | None, options: Options) -> str | None:
    session = api.session
    await session.login()
    return await ensure_paid(api, session.account, months, options.rpc_url, options.deployments_dir)


async def _pick(api: SubscriberApi, country: str | None, protocol: str) -> dict[str, Any]:
    with err_console.status("choosing a node (score, then latency from here)…"):
        chosen, latency = await best_node(api.session, country and country.upper(), protocol)
    shown = f"{latency:.1f} ms" if latency is not None else "latency unknown"
    err_console.print(
        f"node {chosen['id'][:10]}… {chosen['endpoint']} score {chosen.get('score')} ({shown})"
    )
    return chosen


async def _issue(api: SubscriberApi, node_id: str, protocol: str) -> tuple[dict[str, Any], str]:
    if protocol == "wireguard":
        keys = wgconf.new_key_pair()
        issued = await api.issue_config(
            {"node_id": node_id, "protocol": protocol, "public_key": keys.public}
        )
        return issued, wgconf.fill_private_key(issued["config"], keys.private)
    key_pem, csr = openvpn.new_key_and_csr()
    issued = await api.issue_config({"node_id": node_id, "protocol": protocol, "csr": csr})
    return issued, openvpn.fill_private_key(issued["config"], key_pem)


def _suffix(protocol: str) -> str:
    return "conf" if protocol == "wireguard" else "ovpn"


def _manual_command(protocol: str, path: Path) -> str:
    if protocol == "openvpn":
        return f"sudo openvpn --config {path}"
    note = "" if shutil.which("resolvconf") else "  (no resolvconf here: delete the DNS line first)"
    return f"sudo wg-quick up {path}{note}"


def _report(summary: dict[str, Any], as_json: bool, *, connected: bool) -> None:
    if as_json:
        console.print(json.dumps(summary, indent=2))
        return
    if not connected:
        console.print(f"config written to {summary['config']} (mode 0600)")
        console.print(f"node {summary['node']} at {summary['endpoint']}")
        console.print(f"to connect, run: {summary['run']}")
        return
    console.print(
        f"[green]connected[/green] to node {summary['node']} ({host_of(summary['endpoint'])})"
    )
    console.print(
        f"  interface  {summary['interface']}  addresses {', '.join(summary['addresses'])}"
    )
    console.print(f"  proof      the API sees {summary['seen_as']}: {summary['proof']}")
    console.print(f"  took       {summary['seconds']} s    expires {summary['expires_at']}")
    if summary.get("kill_switch"):
        console.print("  kill switch on: traffic leaves only through the tunnel")
