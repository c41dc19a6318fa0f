"""The root half of `nodus up`: the tunnel, the proof, then DNS and the kill switch, with the
state saved at each step so `nodus down` (or a failure here) undoes exactly what was done."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import httpx

from nodus_cli.connect.choose import host_of
from nodus_cli.support.output import err_console
from nodus_cli.tunnel import dns, killswitch, openvpn, proof, routes, wgconf, wireguard
from nodus_cli.tunnel.state import StateStore, TunnelState
from nodus_cli.tunnel.system import TunnelError, require_tools
from nodus_cli.tunnel.teardown import tear_down

HANDSHAKE_S: Final = 20.0
# A first handshake that reached the node before its agent added this device is retried by
# WireGuard only after REKEY_TIMEOUT (5 s); re-setting the peer sends a new one at once. The
# waits between re-sets double from NUDGE_S, so a slow path's answer is not cut off each time.
NUDGE_S: Final = 0.5
HANDSHAKE_POLL_S: Final = 0.05
OPENVPN_CONNECT_S: Final = 30.0


async def bring_up_and_prove(
    store: StateStore,
    summary: dict[str, Any],
    interface: str,
    config_path: Path,
    api_url: str,
    rpc_url: str,
    kill_switch: bool,
    apply_dns: bool,
) -> dict[str, Any]:
    protocol = summary["protocol"]
    text = _read(config_path)
    before = await _whoami_or_none(api_url)
    node_addresses = proof.resolve(host_of(summary["endpoint"]))
    control = routes.control_destinations(api_url, rpc_url)
    control_paths = await routes.control_routes(control)
    state = TunnelState(
        node_id=summary["node"], protocol=protocol, interface=interface,
        endpoint=summary["endpoint"], config_path=str(config_path),
        config_id=summary["config_id"], addresses=list(summary["addresses"]),
        expires_at=summary["expires_at"], started_at=time.time(),
    )  # fmt: skip
    nudge: Callable[[], Awaitable[None]] | None = None
    try:
        if protocol == "wireguard":
            require_tools("ip", "wg")
            config = wgconf.parse(text)
            endpoint_ip = sorted(node_addresses)[0]
            state.undo = await wireguard.bring_up(interface, config, endpoint_ip, store.directory)
            store.save(state)
            servers = config.dns
            transport, port = "udp", int(config.endpoints[0].rsplit(":", 1)[1])
            if config.keepalive:  # else only traffic starts a handshake: nothing to wait for
                nudge = functools.partial(wireguard.set_peers, interface, config, store.directory)
        else:
            require_tools("ip", "openvpn")
            pid_file = store.directory / f"{interface}.pid"
            log = store.directory / f"{interface}.log"
            state.pid_file = str(pid_file)
            store.save(state)
            with err_console.status("openvpn: waiting for the TLS handshake…"):
                await openvpn.start(config_path, interface, pid_file, log, OPENVPN_CONNECT_S)
            host, port = openvpn.remote_of(text)
            endpoint_ip, transport = sorted(proof.resolve(host))[0], "udp"
            servers = openvpn.pushed_dns(log)
        verdict = await _prove(api_url, interface, protocol, before, node_addresses, nudge)
        if not kill_switch:  # with it, nothing leaves outside the tunnel, the CLI's calls included
            state.undo.extend(await routes.pin_control(control_paths))
            store.save(state)
        if apply_dns and servers:
            backup = store.directory / "resolv.conf.before-nodus"
            dns.apply(servers, backup)
            state.resolv_backup = str(backup)
            store.save(state)
        if kill_switch:
            require_tools("nft")
            state.undo.append(await killswitch.enable(interface, endpoint_ip, transport, port))
            state.kill_switch = True
            store.save(state)
    except BaseException:
        await tear_down(state)
        store.clear()
        raise
    return {
        "interface": interface, "seen_as": verdict.seen, "proof": verdict.reason,
        "seen_before": before, "kill_switch": kill_switch,
        "dns": servers if apply_dns else [],
    }  # fmt: skip


async def _whoami_or_none(api_url: str) -> str | None:
    try:
        return await proof.whoami(api_url)
    except (httpx.HTTPError, ValueError, KeyError):
        return None


async def _prove(
    api_url: str,
    interface: str,
    protocol: str,
    before: str | None,
    node_addresses: set[str],
    nudge: Callable[[], Awaitable[None]] | None,
) -> proof.Verdict:
    if proof.api_is_local(api_url):
        raise TunnelError(
            f"cannot prove the tunnel: the API {api_url} is on this host, so its answer never "
            "crosses the tunnel (use the API's network address)"
        )
    deadline = time.monotonic() + HANDSHAKE_S
    last = "no answer"
    with err_console.status(f"waiting for the handshake and GET /v1/whoami through {interface}…"):
        # The handshake first: a request sent before it would wait out its own timeout (2 s)
        # before a lost first handshake is noticed.
        if nudge is not None and not await _handshake(interface, nudge, deadline):
            raise TunnelError(
                f"no handshake with the node after {HANDSHAKE_S:.0f} s: the node may not have "
                "your key yet, or UDP is blocked"
            )
        while time.monotonic() < deadline:
            try:
                seen = await proof.whoami(api_url, seconds=2)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last = str(exc) or type(exc).__name__
                await asyncio.sleep(0.2)
                continue
            verdict = proof.judge(seen, before, node_addresses)
            if not verdict.ok:
                raise TunnelError(verdict.reason)
            return verdict
    hint = "no handshake: the node may not have your key yet, or UDP is blocked"
    if protocol == "wireguard" and await wireguard.latest_handshake(interface):
        hint = "the handshake worked but nothing came back: the node may not forward"
    raise TunnelError(f"the tunnel carries no traffic after {HANDSHAKE_S:.0f} s ({last}); {hint}")


async def _handshake(interface: str, nudge: Callable[[], Awaitable[None]], deadline: float) -> bool:
    """Waits for the first WireGuard handshake (PersistentKeepalive starts it once the peer is
    set), re-setting the peer while none has come back; False at the deadline."""
    wait = NUDGE_S
    next_nudge = time.monotonic() + wait
    while time.monotonic() < deadline:
        if await wireguard.latest_handshake(interface):
            return True
        if time.monotonic() >= next_nudge:
            await nudge()
            wait *= 2
            next_nudge = time.monotonic() + wait
        await asyncio.sleep(HANDSHAKE_POLL_S)
    return False


def _read(path: Path) -> str:
    return path.read_text()
