"""The desired peers of a node, as the control plane's `GET /v1/agent/peers` describes them.
The agent shares only this HTTP contract with the control plane (it never imports it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WireGuardPeer:
    public_key: str  # base64, 32 bytes
    allowed_ips: tuple[str, ...]  # ("10.x.y.z/32", "fd..../128")
    expires_at: datetime  # UTC; the agent removes the peer then, even offline


@dataclass(frozen=True, slots=True)
class OpenVpnPeer:
    cert_serial: str  # the client certificate's serial, as the control plane formats it
    allowed_ips: tuple[str, ...]
    expires_at: datetime


Peer = WireGuardPeer | OpenVpnPeer


@dataclass(frozen=True, slots=True)
class DesiredSet:
    """A revision of the node's desired set; `peers` is complete (a diff from the control plane
    is applied onto the previous set before it becomes one). `history`: the control plane's id
    of the revision history it belongs to (None: unknown, e.g. restored from disk), which a diff
    request sends back."""

    revision: int
    peers: tuple[Peer, ...]
    history: str | None = None


def protocol_of(peer: Peer) -> str:
    return "wireguard" if isinstance(peer, WireGuardPeer) else "openvpn"


def identity_of(peer: Peer) -> str:
    return peer.public_key if isinstance(peer, WireGuardPeer) else peer.cert_serial
