"""WireGuard up with `ip` and `wg` (what wg-quick does, without resolvconf): the interface
(the kernel's, else wireguard-go), `wg setconf`, addresses, MTU, the endpoint pinned and every
address routed through the tunnel. Deleting the interface undoes all but the endpoint route."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Final

from nodus_cli.support.paths import write_private
from nodus_cli.tunnel import routes
from nodus_cli.tunnel.system import TunnelError, run
from nodus_cli.tunnel.wgconf import WireGuardConfig

DEFAULT_MTU: Final = 1420


async def create_interface(interface: str) -> None:
    kernel = await run("ip", "link", "add", "dev", interface, "type", "wireguard", check=False)
    if kernel.ok:
        return
    if "File exists" in kernel.stderr:
        raise TunnelError(
            f"interface {interface} exists already: run `nodus down` or pick --interface"
        )
    # No kernel module: wireguard-go makes the interface, then runs until it is deleted.
    await run("wireguard-go", interface)


async def bring_up(
    interface: str, config: WireGuardConfig, endpoint_ip: str, work_dir: Path
) -> list[list[str]]:
    """Brings the tunnel up; the undo commands (run last-first), recorded as it goes so a
    failure half-way can be undone too."""
    undo: list[list[str]] = []
    try:
        await create_interface(interface)
        undo.append(["ip", "link", "del", "dev", interface])
        await set_peers(interface, config, work_dir)
        versions: set[int] = set()
        for address in config.addresses:
            version = ipaddress.ip_interface(address).version
            versions.add(version)
            await run("ip", f"-{version}", "address", "add", address, "dev", interface)
        await run(
            "ip", "link", "set", "mtu", str(config.mtu or DEFAULT_MTU), "up", "dev", interface
        )
        pinned = await routes.pin_endpoint(endpoint_ip)
        if pinned is not None:
            undo.append(pinned)
        await routes.route_everything(interface, versions)
    except BaseException:
        await undo_all(undo)
        raise
    return undo


async def set_peers(interface: str, config: WireGuardConfig, work_dir: Path) -> None:
    """`wg setconf`: the key and the peers, replacing any (a re-added peer starts a new
    handshake at once: its PersistentKeepalive sends the first packet)."""
    setconf = work_dir / f"{interface}.setconf"
    write_private(setconf, config.setconf)
    try:
        await run("wg", "setconf", interface, str(setconf))
    finally:
        _remove(setconf)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def undo_all(undo: list[list[str]]) -> None:
    for command in reversed(undo):
        await run(*command, check=False)


async def latest_handshake(interface: str) -> int:
    """Seconds since the epoch of the newest handshake (0: none yet)."""
    shown = await run("wg", "show", interface, "latest-handshakes", check=False)
    stamps = [int(line.split()[1]) for line in shown.stdout.splitlines() if len(line.split()) == 2]
    return max(stamps, default=0)


async def transfer(interface: str) -> tuple[int, int]:
    """Bytes (received, sent) over all peers."""
    shown = await run("wg", "show", interface, "transfer", check=False)
    received = sent = 0
    for line in shown.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            received += int(parts[1])
            sent += int(parts[2])
    return received, sent


def handshake_age(stamp: int) -> int | None:
    return None if stamp == 0 else max(0, int(time.time()) - stamp)
