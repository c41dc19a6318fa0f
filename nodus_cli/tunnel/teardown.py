"""Undoing a tunnel: DNS first (while nothing else changed), then the recorded commands
last-first (kill switch, routes, interface), then an OpenVPN daemon by PID."""

from __future__ import annotations

from pathlib import Path

from nodus_cli.tunnel import dns, openvpn
from nodus_cli.tunnel.state import TunnelState
from nodus_cli.tunnel.system import run


async def tear_down(state: TunnelState) -> None:
    if state.resolv_backup:
        dns.restore(Path(state.resolv_backup))
    for command in reversed(state.undo):
        await run(*command, check=False)
    if state.pid_file:
        await openvpn.stop(Path(state.pid_file))
