"""The active tunnel's part of `nodus status`: node, latest handshake age, bytes each way."""

from __future__ import annotations

from typing import Any

from nodus_cli.tunnel import openvpn, wireguard
from nodus_cli.tunnel.state import StateStore


async def active_tunnel(store: StateStore | None = None) -> dict[str, Any] | None:
    state = (store or StateStore()).load()
    if state is None:
        return None
    shown: dict[str, Any] = {
        "node": state.node_id, "protocol": state.protocol, "interface": state.interface,
        "endpoint": state.endpoint, "addresses": state.addresses,
        "kill_switch": state.kill_switch, "expires_at": state.expires_at,
    }  # fmt: skip
    if state.protocol == "wireguard":
        shown["handshake_age_seconds"] = wireguard.handshake_age(
            await wireguard.latest_handshake(state.interface)
        )
        received, sent = await wireguard.transfer(state.interface)
    else:
        shown["handshake_age_seconds"] = None
        received, sent = openvpn.interface_bytes(state.interface)
    shown["bytes_received"], shown["bytes_sent"] = received, sent
    return shown
