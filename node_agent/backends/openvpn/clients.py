"""Client entries: `clients/<serial>.conf`, one per admitted certificate serial."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from node_agent.backends.openvpn.material import OpenVpnMaterial, normalize_serial
from node_agent.peers import OpenVpnPeer

_EXPIRES_LINE = "# nodus-expires-at: "
_SERIAL_LINE = "# nodus-peer: "


@dataclass(frozen=True, slots=True)
class ClientEntry:
    """One admitted client: `clients/<serial>.conf`."""

    serial: str
    ipv4: ipaddress.IPv4Address
    ipv4_netmask: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Interface  # address with the pool's prefix length
    ipv6_gateway: ipaddress.IPv6Address
    expires_at: int  # unix seconds

    @property
    def addresses(self) -> tuple[str, str]:
        return str(self.ipv4), str(self.ipv6.ip)

    def same_addresses(self, other: ClientEntry) -> bool:
        return (self.ipv4, self.ipv4_netmask, self.ipv6, self.ipv6_gateway) == (
            other.ipv4,
            other.ipv4_netmask,
            other.ipv6,
            other.ipv6_gateway,
        )


def render_client_entry(entry: ClientEntry) -> str:
    return (
        f"{_SERIAL_LINE}{entry.serial}\n"
        f"{_EXPIRES_LINE}{entry.expires_at}\n"
        f"ifconfig-push {entry.ipv4} {entry.ipv4_netmask}\n"
        f"ifconfig-ipv6-push {entry.ipv6} {entry.ipv6_gateway}\n"
    )


def parse_client_entry(serial: str, text: str) -> ClientEntry | None:
    """The entry a file holds, or None if it is not one this backend wrote."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(_EXPIRES_LINE):
            values["expires"] = line.removeprefix(_EXPIRES_LINE).strip()
        elif line.startswith(("ifconfig-push ", "ifconfig-ipv6-push ")):
            name, _, rest = line.partition(" ")
            values[name] = rest.strip()
    try:
        ipv4, netmask = values["ifconfig-push"].split()
        ipv6, gateway = values["ifconfig-ipv6-push"].split()
        return ClientEntry(
            serial=serial,
            ipv4=ipaddress.IPv4Address(ipv4),
            ipv4_netmask=ipaddress.IPv4Address(netmask),
            ipv6=ipaddress.IPv6Interface(ipv6),
            ipv6_gateway=ipaddress.IPv6Address(gateway),
            expires_at=int(values["expires"]),
        )
    except (KeyError, ValueError):
        return None


def _host_in(pool: ipaddress.IPv4Network | ipaddress.IPv6Network, text: str) -> str:
    """The host address of `text` (`a.b.c.d/32` or `x::y/128`) if it is a client address of
    `pool` (not the network, the server's host 1, or the IPv4 broadcast). Raises ValueError."""
    interface = ipaddress.ip_interface(text)
    if interface.network.prefixlen != interface.max_prefixlen:
        raise ValueError(f"{text} is not a single address")
    address = interface.ip
    if address.version != pool.version or address not in pool:
        raise ValueError(f"{text} is outside the node's pool {pool}")
    offset = int(address) - int(pool.network_address)
    if offset < 2 or (pool.version == 4 and address == pool.broadcast_address):
        raise ValueError(f"{text} is reserved in the pool {pool}")
    return str(address)


def entry_for(peer: OpenVpnPeer, material: OpenVpnMaterial) -> ClientEntry:
    """The client entry for a peer of the feed. Raises ValueError for a bad serial, or
    addresses that are not one IPv4 and at most one IPv6 client address of the node's pools."""
    serial = normalize_serial(peer.cert_serial)
    ipv4s = [ip for ip in peer.allowed_ips if ipaddress.ip_interface(ip).version == 4]
    ipv6s = [ip for ip in peer.allowed_ips if ipaddress.ip_interface(ip).version == 6]
    if len(ipv4s) != 1 or len(ipv6s) > 1:
        raise ValueError(f"allowed_ips: want one IPv4 and at most one IPv6: {peer.allowed_ips}")
    ipv4 = ipaddress.IPv4Address(_host_in(material.ipv4_pool, ipv4s[0]))
    if ipv6s:
        ipv6 = ipaddress.IPv6Address(_host_in(material.ipv6_pool, ipv6s[0]))
    else:  # the control plane always sends both; host i of the IPv4 pool is host i of the v6 one
        ipv6 = material.ipv6_pool.network_address + (
            int(ipv4) - int(material.ipv4_pool.network_address)
        )
    expires = peer.expires_at
    if expires.tzinfo is None:
        raise ValueError("expires_at: a naive time")
    return ClientEntry(
        serial=serial,
        ipv4=ipv4,
        ipv4_netmask=material.ipv4_pool.netmask,
        ipv6=ipaddress.IPv6Interface(f"{ipv6}/{material.ipv6_pool.prefixlen}"),
        ipv6_gateway=material.server_ipv6,
        expires_at=int(expires.timestamp()),
    )


def desired_entries(
    peers: Iterable[OpenVpnPeer],
    material: OpenVpnMaterial,
    now: datetime,
    revoked: frozenset[str] = frozenset(),
) -> tuple[dict[str, ClientEntry], list[str]]:
    """The entries to have on disk: valid peers that have not expired and are not in the CRL,
    each address held once (a later claimant of an address is refused). Also the reasons
    peers were refused (for the log; they are never applied)."""
    wanted: dict[str, ClientEntry] = {}
    holders: dict[str, str] = {}
    refused: list[str] = []
    cutoff = int(now.timestamp())
    for peer in peers:
        try:
            entry = entry_for(peer, material)
        except ValueError as exc:
            refused.append(f"peer {peer.cert_serial[:64]!r} refused: {exc}")
            continue
        if entry.expires_at <= cutoff or entry.serial in revoked:
            continue
        if entry.serial in wanted:
            refused.append(f"peer {entry.serial} refused: listed twice")
            continue
        clash = next((holders[a] for a in entry.addresses if a in holders), None)
        if clash is not None:
            refused.append(f"peer {entry.serial} refused: its address is {clash}'s")
            continue
        wanted[entry.serial] = entry
        holders.update(dict.fromkeys(entry.addresses, entry.serial))
    return wanted, refused


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """The difference between the entries on disk and the wanted ones."""

    write: dict[str, ClientEntry]  # new files, and files whose content changes
    remove: frozenset[str]  # files to delete
    cut: frozenset[str]  # removed serials: their sessions end (HALT)
    reconnect: frozenset[str]  # serials whose addresses moved: they reconnect (RESTART)

    @property
    def empty(self) -> bool:
        return not (self.write or self.remove)


def plan_clients(
    current: Mapping[str, ClientEntry], wanted: Mapping[str, ClientEntry]
) -> ClientPlan:
    removed = frozenset(current.keys() - wanted.keys())
    write = {s: e for s, e in wanted.items() if current.get(s) != e}
    moved = frozenset(s for s in write if s in current and not current[s].same_addresses(write[s]))
    return ClientPlan(write=write, remove=removed, cut=removed, reconnect=moved)
