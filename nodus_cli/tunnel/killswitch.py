"""The kill switch: an nftables table owned by nodus whose output chain drops everything but
loopback, the tunnel's interface, the node's endpoint (its protocol and port) and the API's and
the chain RPC's addresses (TCP, their ports) on the underlay. If the tunnel's interface goes,
its routes go with it and the traffic that would take the underlay instead is dropped: nothing
leaks but the CLI's own calls to the API and the chain. `nodus down` deletes the table."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from nodus_cli.tunnel.routes import Destination
from nodus_cli.tunnel.system import run

TABLE: Final = "nodus_killswitch"
_INTERFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def ruleset(
    interface: str,
    endpoint_ip: str,
    transport: str,
    port: int,
    control: list[Destination] | None = None,
) -> str:
    if not _INTERFACE.fullmatch(interface):
        raise ValueError(f"not an interface name: {interface!r}")
    address = ipaddress.ip_address(endpoint_ip)
    family = "ip" if address.version == 4 else "ip6"
    if transport not in ("udp", "tcp") or not 0 < port < 65536:
        raise ValueError(f"bad transport {transport}/{port}")
    allowed = [f"{family} daddr {address} {transport} dport {port} accept"]
    for host, tcp_port in control or []:
        destination = ipaddress.ip_address(host)
        if not 0 < tcp_port < 65536:
            raise ValueError(f"bad port {tcp_port}")
        kind = "ip" if destination.version == 4 else "ip6"
        allowed.append(f"{kind} daddr {destination} tcp dport {tcp_port} accept")
    rules = "\n    ".join(allowed)
    return f"""table inet {TABLE} {{
  chain output {{
    type filter hook output priority 0; policy drop;
    oifname "lo" accept
    oifname "{interface}" accept
    {rules}
  }}
}}
"""


async def enable(
    interface: str,
    endpoint_ip: str,
    transport: str,
    port: int,
    control: list[Destination] | None = None,
) -> list[str]:
    """Installs the table (replacing an older one); the command that removes it."""
    await disable()
    await run("nft", "-f", "-", stdin=ruleset(interface, endpoint_ip, transport, port, control))
    return ["nft", "delete", "table", "inet", TABLE]


async def disable() -> None:
    await run("nft", "delete", "table", "inet", TABLE, check=False)
