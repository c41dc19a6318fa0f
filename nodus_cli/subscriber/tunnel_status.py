"""The hook through which `nodus status` shows the active tunnel: what the tunnel `nodus up`
brought up reports (node, interface, latest handshake age, bytes each way; read by
tunnel/status.py from its state file and the live interface), or None when none is up."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nodus_cli.support.options import Options
from nodus_cli.tunnel.status import active_tunnel as read_active_tunnel


@dataclass(frozen=True, slots=True)
class TunnelView:
    node_id: str
    interface: str
    protocol: str
    latest_handshake_age_s: int | None  # None: no handshake yet
    rx_bytes: int
    tx_bytes: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        age = self.latest_handshake_age_s
        handshake = "none yet" if age is None else f"{age} s ago"
        return [
            f"tunnel:  {self.interface} ({self.protocol}) to node {self.node_id}",
            f"         latest handshake {handshake}; received {self.rx_bytes:,} B, sent "
            f"{self.tx_bytes:,} B",
        ]


async def active_tunnel(options: Options) -> TunnelView | None:
    """The tunnel `nodus up` brought up, if any."""
    del options
    shown = await read_active_tunnel()
    if shown is None:
        return None
    return TunnelView(
        node_id=shown["node"],
        interface=shown["interface"],
        protocol=shown["protocol"],
        latest_handshake_age_s=shown["handshake_age_seconds"],
        rx_bytes=shown["bytes_received"],
        tx_bytes=shown["bytes_sent"],
    )
