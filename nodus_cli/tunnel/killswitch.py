"""The kill switch: an nftables table owned by nodus whose output chain drops everything but
loopback, the tunnel's interface and the node's endpoint (its protocol and port) on the
underlay. If the tunnel's interface goes, its routes go with it and the traffic that would take
the underlay instead is refused: nothing leaks, the CLI's own calls to the API and the chain
included. Refused, not silently dropped: the packet is answered locally (a TCP reset, an ICMP
"administratively prohibited"), so a program fails at once instead of hanging until its timeout.
`nodus down` deletes the table."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from nodus_cli.tunnel.system import run

TABLE: Final = "nodus_killswitch"
_INTERFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def ruleset(interface: str, endpoint_ip: str, transport: str, port: int) -> str:
    if not _INTERFACE.fullmatch(interface):
        raise ValueError(f"not an interface name: {interface!r}")
    address = ipaddress.ip_address(endpoint_ip)
    family = "ip" if address.version == 4 else "ip6"
    if transport not in ("udp", "tcp") or not 0 < port < 65536:
        raise ValueError(f"bad transport {transport}/{port}")
    return f"""table inet {TABLE} {{
  chain output {{
    type filter hook output priority 0; policy drop;
    oifname "lo" accept
    oifname "{interface}" accept
    {family} daddr {address} {transport} dport {port} accept
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }}
}}
"""


async def enable(interface: str, endpoint_ip: str, transport: str, port: int) -> list[str]:
    """Installs the table (replacing an older one); the command that removes it."""
    await disable()
    await run("nft", "-f", "-", stdin=ruleset(interface, endpoint_ip, transport, port))
    return ["nft", "delete", "table", "inet", TABLE]


async def disable() -> None:
    await run("nft", "delete", "table", "inet", TABLE, check=False)
