"""Which part of the node's pools each protocol uses, the control plane's rule
(control_plane/tunnel/addresses.py): WireGuard the lower half of each pool, OpenVPN the upper
half. Two interfaces with the same connected route would send one protocol's replies into the
other's interface; disjoint halves give each its own route."""

from __future__ import annotations

import ipaddress
from typing import Literal

Protocol = Literal["wireguard", "openvpn"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def protocol_pool(pool: Network, protocol: Protocol) -> Network:
    """The half of `pool` that `protocol`'s devices get addresses in."""
    lower, upper = pool.subnets(prefixlen_diff=1)
    return lower if protocol == "wireguard" else upper


def interface_address(pool: Network, protocol: Protocol, *, whole: bool = False) -> str:
    """The node's own address on `protocol`'s interface: host 1 of its half, with the half's
    prefix (`whole`: the pool's prefix, for a node that serves no other protocol, so devices
    allocated before the split, anywhere in the pool, stay reachable)."""
    half = protocol_pool(pool, protocol)
    prefix = pool.prefixlen if whole else half.prefixlen
    return f"{half.network_address + 1}/{prefix}"
