"""Address pools of a node: one private IPv4 network and one ULA IPv6 network.

A device's two addresses share one host index `i` in both pools (`10.x.0.0/16` + i and
`fdxx:xxxx:xxxx::/112` + i), so an allocation is one random pick, and the unique indexes on
live (node_id, ipv4) and (node_id, ipv6) both guard it. Index 0 is each network's own address,
index 1 the node's tunnel address; the IPv4 broadcast address is never handed out.

Each protocol has its own half of both pools (`Pools.for_protocol`): WireGuard the lower half,
OpenVPN the upper half. A node serving both runs two interfaces, and two interfaces with the
same connected route send one protocol's replies into the other's interface; disjoint halves
give each interface its own route. Indexes are then counted within the half (index 1 of the
upper half is the OpenVPN server's address). The agent applies the same rule
(node_agent/protocols.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass

FIRST_DEVICE_INDEX = 2  # 0: the network, 1: the node itself
IPV4_PREFIX_RANGE = (8, 29)
IPV6_PREFIX_RANGE = (48, 124)
ULA = ipaddress.IPv6Network("fc00::/7")


def default_pools(node_id: str) -> tuple[str, str]:
    """`10.x.0.0/16` and `fdxx:xxxx:xxxx::/112`, derived from the node id: a private IPv4 /16
    (x from the id's first byte, so different nodes mostly differ) and a ULA /112 whose 40-bit
    global id comes from a hash of the node id (RFC 4193's "random" global id, reproducible)."""
    raw = bytes.fromhex(node_id.removeprefix("0x"))
    ipv4 = ipaddress.IPv4Network((int.from_bytes(bytes([10, raw[0], 0, 0]), "big"), 16))
    global_id = hashlib.sha256(b"nodus-ula:" + raw).digest()[:5]
    ipv6 = ipaddress.IPv6Network((int.from_bytes(b"\xfd" + global_id + bytes(10), "big"), 112))
    return str(ipv4), str(ipv6)


_IPV4_NETWORK_TEXT = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}/[0-9]{1,2}")
_IPV6_NETWORK_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}/[0-9]{1,3}")  # no zone id (`%eth0`)


def parse_ipv4_pool(value: str) -> ipaddress.IPv4Network:
    """A private IPv4 network (RFC 1918 and the like) between /8 and /29, host bits zero."""
    if not isinstance(value, str) or _IPV4_NETWORK_TEXT.fullmatch(value) is None:
        raise ValueError("not an IPv4 network written as a.b.c.d/len")
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 network with zero host bits: {exc}") from exc
    low, high = IPV4_PREFIX_RANGE
    if not low <= network.prefixlen <= high:
        raise ValueError(f"the IPv4 pool's prefix must be between /{low} and /{high}")
    if not network.is_private or network.is_loopback or network.is_link_local:
        raise ValueError("the IPv4 pool must be a private network (for example 10.8.0.0/16)")
    if network.is_multicast or network.is_reserved or network.is_unspecified:
        raise ValueError("the IPv4 pool must be a private unicast network")
    return network


def parse_ipv6_pool(value: str) -> ipaddress.IPv6Network:
    """A unique local (fc00::/7) IPv6 network between /48 and /124, host bits zero."""
    if not isinstance(value, str) or _IPV6_NETWORK_TEXT.fullmatch(value) is None:
        raise ValueError("not an IPv6 network written as address/len (no zone id)")
    try:
        network = ipaddress.IPv6Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv6 network with zero host bits: {exc}") from exc
    low, high = IPV6_PREFIX_RANGE
    if not low <= network.prefixlen <= high:
        raise ValueError(f"the IPv6 pool's prefix must be between /{low} and /{high}")
    if not network.subnet_of(ULA):
        raise ValueError("the IPv6 pool must be a unique local network (fd00::/8)")
    return network


@dataclass(frozen=True, slots=True)
class Pools:
    ipv4: ipaddress.IPv4Network
    ipv6: ipaddress.IPv6Network

    @classmethod
    def of(cls, ipv4_pool: str, ipv6_pool: str) -> Pools:
        return cls(ipaddress.IPv4Network(ipv4_pool), ipaddress.IPv6Network(ipv6_pool))

    def for_protocol(self, protocol: str) -> Pools:
        """The half of both pools that `protocol`'s devices and interface use (see above)."""
        halves4 = list(self.ipv4.subnets(prefixlen_diff=1))
        halves6 = list(self.ipv6.subnets(prefixlen_diff=1))
        upper = 0 if protocol == "wireguard" else 1
        return Pools(halves4[upper], halves6[upper])

    @property
    def last_index(self) -> int:
        """The highest host index a device may get (inclusive)."""
        return min(self.ipv4.num_addresses - 2, self.ipv6.num_addresses - 1)

    @property
    def capacity(self) -> int:
        return max(0, self.last_index - FIRST_DEVICE_INDEX + 1)

    def node_addresses(self) -> tuple[str, str]:
        """The node's own tunnel addresses (index 1), as interfaces: `10.x.0.1/16`, ..."""
        return (
            f"{self.ipv4.network_address + 1}/{self.ipv4.prefixlen}",
            f"{self.ipv6.network_address + 1}/{self.ipv6.prefixlen}",
        )

    def addresses(self, index: int) -> tuple[str, str]:
        """The device's IPv4 and IPv6 host addresses at `index` (no prefix)."""
        if not FIRST_DEVICE_INDEX <= index <= self.last_index:
            raise ValueError(f"host index {index} is outside the pool")
        return str(self.ipv4.network_address + index), str(self.ipv6.network_address + index)

    def index_of(self, ipv4: str) -> int:
        return int(ipaddress.IPv4Address(ipv4)) - int(self.ipv4.network_address)

    def random_indexes(self, count: int) -> list[int]:
        """Up to `count` distinct random host indexes."""
        capacity = self.capacity
        if capacity <= count:
            return list(range(FIRST_DEVICE_INDEX, self.last_index + 1))
        picked: set[int] = set()
        while len(picked) < count:
            picked.add(FIRST_DEVICE_INDEX + secrets.randbelow(capacity))
        return list(picked)


class PoolsCache:
    """`Pools.of(...).for_protocol(...)` per process: a node's pools are text that rarely
    changes, and parsing them (and halving them) on every issuance costs more than the lookup.
    Keyed by the pools' text, so a changed pool is simply another entry; bounded."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._pools: dict[tuple[str, str, str], Pools] = {}

    def get(self, ipv4_pool: str, ipv6_pool: str, protocol: str) -> Pools:
        key = (ipv4_pool, ipv6_pool, protocol)
        pools = self._pools.get(key)
        if pools is None:
            if len(self._pools) >= self.limit:
                self._pools.clear()
            pools = self._pools[key] = Pools.of(ipv4_pool, ipv6_pool).for_protocol(protocol)
        return pools


def device_address(ipv4: str, ipv6: str) -> list[str]:
    """How the API shows a device's addresses: `["10.x.y.z/32", "fd...:n/128"]`."""
    v4 = ipaddress.ip_interface(ipv4).ip
    v6 = ipaddress.ip_interface(ipv6).ip
    return [f"{v4}/32", f"{v6}/128"]
