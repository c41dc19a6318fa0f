"""Which IP addresses are on the public Internet: one rule for the prober (what it may connect
to) and for node registration (what endpoint a node may claim).

An IPv6 address can carry an IPv4 address that the packet really goes to: IPv4-mapped
(`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::/96`, RFC
6052), 6to4 (`2002::/16`, RFC 3056) and Teredo (`2001::/32`, RFC 4380: the server and the
obfuscated client). Python's `is_global` looks only at the outer address, so `::127.0.0.1` or
`64:ff9b::a9fe:a9fe` (169.254.169.254, the cloud metadata service, through NAT64) pass as global.
Here every embedded IPv4 address is unwrapped and must itself be global. The local-use NAT64
prefix `64:ff9b:1::/48` (RFC 8215) never is: its translator is on the local network.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

from control_plane.errors import EndpointNotPublic

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressClass(StrEnum):
    """What an address is; everything but GLOBAL is refused where public addresses are due."""

    GLOBAL = "global"
    LOOPBACK = "loopback"
    PRIVATE = "private"  # RFC 1918, ULA, CGNAT, benchmarking, documentation, ...
    LINK_LOCAL = "link_local"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries (the ones packets really go to), or None if
    it is a plain IPv6 address."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _NAT64_WELL_KNOWN:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return [server, client]
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: nor ::1
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return None


def _classify_plain(address: IPAddress) -> AddressClass:
    if address.is_unspecified:
        return AddressClass.UNSPECIFIED
    if address.is_loopback:
        return AddressClass.LOOPBACK
    if address.is_link_local:
        return AddressClass.LINK_LOCAL
    if address.is_multicast:
        return AddressClass.MULTICAST
    if address.is_global:
        return AddressClass.GLOBAL
    if address.is_reserved:
        return AddressClass.RESERVED
    return AddressClass.PRIVATE


def classify(address: IPAddress) -> AddressClass:
    """The class of `address` after unwrapping any IPv4 address it embeds: a wrapper is as
    global as the least global address inside it."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return AddressClass.LINK_LOCAL
        if address in _NAT64_LOCAL_USE:
            return AddressClass.PRIVATE
        inner = embedded_ipv4(address)
        if inner is not None:
            for embedded in inner:
                kind = _classify_plain(embedded)
                if kind is not AddressClass.GLOBAL:
                    return kind
            return AddressClass.GLOBAL
    return _classify_plain(address)


def is_global(address: IPAddress) -> bool:
    return classify(address) is AddressClass.GLOBAL


def literal_address(host: str) -> IPAddress | None:
    """`host` as an IP address if it is one (an IPv6 address with or without brackets)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_class(host: str) -> AddressClass | None:
    """The class of an endpoint's host if it is an IP literal or a name that is local by
    definition (`localhost`, `*.localhost`: RFC 6761); None for any other DNS name (checked
    when it is resolved, by whoever connects)."""
    address = literal_address(host)
    if address is not None:
        return classify(address)
    name = host.lower().removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return AddressClass.LOOPBACK
    return None


def require_public_endpoint(endpoint: str, *, allow_private: bool) -> None:
    """Refuses (422 `endpoint_not_public`) a normalized `host:port` endpoint whose host is not a
    global address, unless `allow_private`. A DNS name passes here; the prober checks every
    address it resolves to before it connects."""
    if allow_private:
        return
    host = endpoint.rpartition(":")[0]
    kind = host_class(host)
    if kind is not None and kind is not AddressClass.GLOBAL:
        raise EndpointNotPublic(
            f"endpoint: {host} is a {kind.value.replace('_', '-')} address, not reachable from "
            "the Internet; register the node's public address or DNS name"
        )
