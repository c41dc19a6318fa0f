"""The proof that the tunnel carries traffic: GET /v1/whoami on a fresh connection (no pooled
one from before the tunnel) must answer the node's address, not the client's."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final

import httpx

WHOAMI_TIMEOUT_S: Final = 5.0


async def whoami(api_url: str, seconds: float = WHOAMI_TIMEOUT_S) -> str:
    """The address the API sees; raises httpx.HTTPError or ValueError."""
    async with httpx.AsyncClient(timeout=seconds) as client:
        response = await client.get(api_url.rstrip("/") + "/v1/whoami")
        response.raise_for_status()
        address = response.json()["address"]
    return str(ipaddress.ip_address(address))


def resolve(host: str) -> set[str]:
    """The endpoint host's addresses (an IP is itself)."""
    host = host.strip("[]")
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        infos = socket.getaddrinfo(host, None)
        return {str(ipaddress.ip_address(info[4][0])) for info in infos}


def api_is_local(api_url: str) -> bool:
    host = httpx.URL(api_url).host
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    seen: str
    reason: str


def judge(seen: str, before: str | None, node_addresses: set[str]) -> Verdict:
    if seen in node_addresses:
        return Verdict(True, seen, "the API sees the node's address")
    if before is not None and seen == before:
        return Verdict(
            False, seen, "the API still sees this host's own address: traffic is not in the tunnel"
        )
    return Verdict(
        True, seen, "the API sees an address other than yours (the node leaves by another address)"
    )
