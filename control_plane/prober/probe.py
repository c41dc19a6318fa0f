"""Measuring nodes: a few HTTP requests to each node's health endpoint, timed.

The target of a node is derived from its registered endpoint (one rule, in `health_url`): the
node agent serves `GET /health` over TCP on the same host and port number as the endpoint that
clients use (WireGuard and OpenVPN use UDP, so the TCP port is free). The host is never taken
from anything else, so a node cannot have a third party answer its probes.

A probe resolves the host once and connects to that address (no DNS rebinding between the check
and the request); private, loopback and link-local addresses are refused unless allowed (a LAN or
a test), so operators cannot point the prober into the prober's own network. Redirects are not
followed, environment proxies are ignored and the response body is never read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from control_plane.nodes.schemas import format_endpoint, parse_endpoint

HEALTH_PATH = "/health"
USER_AGENT = "nodus-prober/1"


@dataclass(frozen=True, slots=True)
class Target:
    node_id: str
    url: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    attempts: int
    rtt_us: tuple[int, ...]
    error: str | None


def health_url(endpoint: str) -> str:
    """`host:port` (the node's endpoint) -> `http://host:port/health`."""
    host, port = parse_endpoint(endpoint)
    return f"http://{format_endpoint(host, port)}{HEALTH_PATH}"


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone id is not part of the address
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    return addresses


async def probe_target(
    client: httpx.AsyncClient,
    target: Target,
    *,
    attempts: int,
    request_timeout: float,
    allow_private: bool,
) -> ProbeResult:
    """`attempts` timed GETs of the target; an attempt answers if it gets a 2xx."""
    parts = urlsplit(target.url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        return ProbeResult(attempts, (), "invalid_target")
    try:
        addresses = await asyncio.wait_for(_resolve(parts.hostname, parts.port), request_timeout)
    except (OSError, TimeoutError, ValueError):
        return ProbeResult(attempts, (), "dns")
    if not addresses:
        return ProbeResult(attempts, (), "dns")
    if not allow_private and not all(_address_allowed(a) for a in addresses):
        return ProbeResult(attempts, (), "private_address")
    address = addresses[0]
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"http://{host}:{parts.port}{parts.path or HEALTH_PATH}"
    headers = {"host": parts.netloc, "user-agent": USER_AGENT}

    rtts: list[int] = []
    error: str | None = None
    for _ in range(attempts):
        started = time.perf_counter()
        try:
            request = client.stream("GET", url, headers=headers, timeout=request_timeout)
            async with request as response:
                elapsed = time.perf_counter() - started
                if 200 <= response.status_code < 300:
                    rtts.append(max(0, round(elapsed * 1_000_000)))
                else:
                    error = f"http_{response.status_code}"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.ConnectError:
            error = "connect_failed"
        except httpx.HTTPError:
            error = "protocol_error"
    return ProbeResult(attempts, tuple(rtts), error)


async def probe_all(
    targets: Sequence[Target],
    *,
    attempts: int,
    request_timeout: float,
    concurrency: int,
    allow_private: bool,
) -> dict[str, ProbeResult]:
    """Probes every target, at most `concurrency` at once; results by node id."""
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(
        follow_redirects=False, trust_env=False, limits=limits, timeout=request_timeout
    ) as client:

        async def one(target: Target) -> tuple[str, ProbeResult]:
            async with semaphore:
                result = await probe_target(
                    client,
                    target,
                    attempts=attempts,
                    request_timeout=request_timeout,
                    allow_private=allow_private,
                )
                return target.node_id, result

        pairs = await asyncio.gather(*(one(t) for t in targets))
    return dict(pairs)
