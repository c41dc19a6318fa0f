"""Routing all traffic into the tunnel the way wg-quick's and OpenVPN's `def1` do without
touching the default route: two halves of each address family through the tunnel (more
specific than any default), and the node's endpoint pinned to the underlay path it has now."""

from __future__ import annotations

import ipaddress
import json

from nodus_cli.tunnel.system import TunnelError, run

HALVES = {4: ("0.0.0.0/1", "128.0.0.0/1"), 6: ("::/1", "8000::/1")}


async def pin_endpoint(endpoint_ip: str) -> list[str] | None:
    """A host route to the endpoint through today's underlay path; the command that removes
    it, or None when such a route already existed (then it is not ours to remove)."""
    address = ipaddress.ip_address(endpoint_ip)
    family = f"-{address.version}"
    found = await run("ip", family, "-j", "route", "get", str(address), check=False)
    if not found.ok:
        raise TunnelError(f"no route to the node's endpoint {address}: check the network")
    route = json.loads(found.stdout)[0]
    prefix = f"{address}/{address.max_prefixlen}"
    via = ["via", route["gateway"]] if route.get("gateway") else []
    added = await run("ip", family, "route", "add", prefix, *via, "dev", route["dev"], check=False)
    if not added.ok:
        if "File exists" in added.stderr:
            return None
        raise TunnelError(f"cannot pin the route to {address}: {added.stderr.strip()}")
    return ["ip", family, "route", "del", prefix, *via, "dev", route["dev"]]


async def route_everything(interface: str, versions: set[int]) -> None:
    """The halves through `interface` (they go when the interface goes)."""
    for version in sorted(versions):
        for half in HALVES[version]:
            await run("ip", f"-{version}", "route", "add", half, "dev", interface)
