"""VPN backends: the seam between the agent loop and a VPN server (WireGuard, OpenVPN)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from node_agent.peers import Peer


@dataclass(frozen=True, slots=True)
class PeerStats:
    """What a backend observes of one live peer (for heartbeats and metrics)."""

    key: str  # WireGuard public key or OpenVPN certificate serial
    last_handshake_at: float | None  # unix seconds
    rx_bytes: int  # cumulative counters, as the server reports them
    tx_bytes: int


class VpnBackend(Protocol):
    """Keeps one VPN server's peers equal to a desired set, touching only the difference."""

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        """Makes the live peers exactly `peers` (of this backend's protocol), in one batch."""
        ...

    async def stats(self) -> list[PeerStats]:
        """The live peers' handshake times and byte counters."""
        ...
