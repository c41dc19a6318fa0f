"""The hook through which `nodus status` shows the active tunnel.

`nodus up` (the `cliup` branch) implements `active_tunnel`: it returns what the tunnel it
brought up reports (node, interface, latest handshake age, bytes each way), or None when no
tunnel of `nodus` is up. Until then it returns None and `status` says "no tunnel".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nodus_cli.support.options import Options


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
    """The tunnel `nodus up` brought up, if any (implemented by `nodus up`)."""
    del options
    return None
