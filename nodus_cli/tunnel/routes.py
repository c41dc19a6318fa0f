"""Routing all traffic into the tunnel the way wg-quick's and OpenVPN's `def1` do without
touching the default route: two halves of each address family through the tunnel (more
specific than any default), and the node's endpoint pinned to the underlay path it has now
(after the proof, the API and the chain RPC too)."""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass

import httpx

from nodus_cli.tunnel.system import TunnelError, run

HALVES = {4: ("0.0.0.0/1", "128.0.0.0/1"), 6: ("::/1", "8000::/1")}


@dataclass(frozen=True, slots=True)
class HostRoute:
    """The path the kernel takes to `address` now: the next hop (None on-link) and device."""

    address: str
    gateway: str | None
    device: str

    @property
    def spec(self) -> list[str]:
        address = ipaddress.ip_address(self.address)
        via = ["via", self.gateway] if self.gateway else []
        return [f"{address}/{address.max_prefixlen}", *via, "dev", self.device]


async def underlay_route(address: str, what: str = "the node's endpoint") -> HostRoute:
    version = ipaddress.ip_address(address).version
    found = await run("ip", f"-{version}", "-j", "route", "get", address, check=False)
    if not found.ok:
        raise TunnelError(f"no route to {what} {address}: check the network")
    route = json.loads(found.stdout)[0]
    return HostRoute(address, route.get("gateway"), route["dev"])


async def pin(route: HostRoute) -> list[str] | None:
    """A host route along `route`; the command that removes it, or None when such a route
    already existed (then it is not ours to remove)."""
    family = f"-{ipaddress.ip_address(route.address).version}"
    added = await run("ip", family, "route", "add", *route.spec, check=False)
    if not added.ok:
        if "File exists" in added.stderr:
            return None
        raise TunnelError(f"cannot pin the route to {route.address}: {added.stderr.strip()}")
    return ["ip", family, "route", "del", *route.spec]


async def pin_endpoint(endpoint_ip: str) -> list[str] | None:
    """The endpoint pinned to today's underlay path (see `pin`)."""
    return await pin(await underlay_route(endpoint_ip))


async def route_everything(interface: str, versions: set[int]) -> None:
    """The halves through `interface` (they go when the interface goes)."""
    for version in sorted(versions):
        for half in HALVES[version]:
            await run("ip", f"-{version}", "route", "add", half, "dev", interface)


Destination = tuple[str, int]


def control_destinations(*urls: str) -> list[Destination]:
    """The addresses and TCP ports of the API and the chain RPC (loopback left out: it never
    takes the tunnel), resolved now, once."""
    found: set[Destination] = set()
    for url in urls:
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(parsed.host, port, proto=socket.IPPROTO_TCP)
        except OSError:
            continue  # unresolvable now: nothing to pin (the command will say it cannot reach it)
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not address.is_loopback:
                found.add((str(address), port))
    return sorted(found)


async def control_routes(destinations: list[Destination]) -> list[HostRoute]:
    """The underlay paths to the API and the RPC, read BEFORE the tunnel takes every route."""
    return [
        await underlay_route(address, "the API or chain RPC")
        for address in sorted({address for address, _ in destinations})
    ]


async def pin_control(paths: list[HostRoute]) -> list[list[str]]:
    """After the proof: the API and the RPC pinned to the underlay like the endpoint, so a tunnel
    the node stops carrying (a lapsed subscription) does not take `nodus status` and `nodus
    renew` down with it. The commands that remove the pins."""
    undo = []
    for path in paths:
        pinned = await pin(path)
        if pinned is not None:
            undo.append(pinned)
    return undo
