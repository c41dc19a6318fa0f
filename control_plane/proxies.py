"""Who the client is behind a reverse proxy: `X-Forwarded-For` is believed only from the peers
listed in `NODUS_TRUSTED_PROXIES` (empty by default: the connection's peer is the client).

From a trusted peer, the header is read right to left, skipping trusted addresses; the first
address that is not trusted is the client (what the nearest proxy we trust saw). Anything a client
writes into the header itself sits further left and is never read, so it can neither dodge the
sign-in limit nor put a forged address into the logs. The middleware rewrites the ASGI scope's
`client`, so the rate limits and the logs see the same address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_trusted_proxies(values: Iterable[str]) -> list[Network]:
    """IPs or CIDRs -> networks; raises ValueError naming a bad entry."""
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {value!r} is not an IP address or CIDR") from exc
    return networks


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Address, nets: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in nets)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address, given the connection's peer and the X-Forwarded-For header."""
    peer_address = _address(peer)
    if peer_address is None or not forwarded_for or not _trusted(peer_address, trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:  # not written by a proxy we trust: stop at the last good hop
            break
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client


class TrustedProxiesMiddleware:
    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client") and self.trusted:
            headers = [
                value.decode("latin-1")
                for name, value in scope.get("headers", [])
                if name.lower() == b"x-forwarded-for"
            ]
            host, port = scope["client"]
            client = client_address(host, ",".join(headers), self.trusted)
            scope["client"] = (client, port if client == host else 0)
        await self.app(scope, receive, send)
