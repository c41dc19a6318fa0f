"""Measuring nodes: a few HTTP requests to each node's health endpoint, timed and checked.

The target of a node is derived from its registered endpoint (one rule, in `health_url`): the
node agent serves `GET /health` over TCP on the same host and port number as the endpoint that
clients use (WireGuard and OpenVPN use UDP, so the TCP port is free). The host is never taken
from anything else. An endpoint is only a claim, though: every request carries a fresh nonce and
counts only if the answer is signed for that nonce by the node's own agent key (proof.py), so a
node cannot have another node's agent answer its probes.

A probe resolves the host once, checks every address it resolves to (addresses.py: embedded IPv4
addresses unwrapped) and connects to the checked address (no DNS rebinding between the check and
the request); non-global addresses are refused unless allowed (a LAN or a test), so operators
cannot point the prober into the prober's own network. Redirects are not followed, environment
proxies are ignored and at most a few KiB of the answer are read.

Why an attempt failed (the sample's `error`, the last failure of the round): `invalid_target`,
`dns`, `private_address`, `connect_timeout`, `refused` (no connection), `timeout` (no whole
answer within the timeout, however the node paces it), `protocol_error`, `http_error` (not a
2xx), `too_large`, and the proof's `unsigned`, `wrong_node`, `stale_nonce` and
`bad_signature`.

Traced (when the caller passes a tracer): a `probe` span per node with its outcome, and a
`probe attempt` client span per request, so a round's trace shows which node was slow and why.
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
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Tracer

from control_plane.addresses import IPAddress, is_global
from control_plane.prober.proof import MAX_ANSWER_BYTES, check_answer, new_nonce
from control_plane.tunnel.grammar import format_endpoint, parse_endpoint

HEALTH_PATH = "/health"
USER_AGENT = "nodus-prober/1"


@dataclass(frozen=True, slots=True)
class Target:
    node_id: str
    url: str
    agent: str  # the node's on-chain agent address: who must sign its health answers


@dataclass(frozen=True, slots=True)
class ProbeResult:
    attempts: int
    rtt_us: tuple[int, ...]
    error: str | None


def health_url(endpoint: str) -> str:
    """`host:port` (the node's endpoint) -> `http://host:port/health`."""
    host, port = parse_endpoint(endpoint)
    return f"http://{format_endpoint(host, port)}{HEALTH_PATH}"


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone id is not part of the address
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    return addresses


async def _attempt(
    client: httpx.AsyncClient,
    target: Target,
    url: str,
    headers: dict[str, str],
    request_timeout: float,
) -> tuple[int | None, str | None]:
    """One request with a fresh nonce: (round trip in microseconds, None) if the node's agent
    answered it, else (None, why not)."""
    nonce = new_nonce()
    started = time.perf_counter()
    try:
        # httpx's timeout bounds each read; this bounds the attempt, so a node trickling its
        # answer cannot stretch a round (or an on-demand probe) past samples x timeout.
        async with asyncio.timeout(request_timeout):
            request = client.stream(
                "GET", url, params={"nonce": nonce}, headers=headers, timeout=request_timeout
            )
            async with request as response:
                if not 200 <= response.status_code < 300:
                    return None, "http_error"
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        return None, "too_large"
                elapsed = time.perf_counter() - started
    except TimeoutError:
        return None, "timeout"
    except httpx.ConnectTimeout:
        return None, "connect_timeout"
    except httpx.TimeoutException:
        return None, "timeout"
    except httpx.ConnectError:
        return None, "refused"
    except httpx.HTTPError:
        return None, "protocol_error"
    problem = check_answer(
        bytes(body), node_id=target.node_id, agent=target.agent, nonce=nonce, now=time.time()
    )
    if problem is not None:
        return None, problem
    return max(0, round(elapsed * 1_000_000)), None


async def probe_target(
    client: httpx.AsyncClient,
    target: Target,
    *,
    attempts: int,
    request_timeout: float,
    allow_private: bool,
    tracer: Tracer | None = None,
) -> ProbeResult:
    """`attempts` timed GETs of the target; an attempt answers if it gets a 2xx whose proof of
    service is the node's."""
    tracer = tracer or NoOpTracer()
    with tracer.start_as_current_span(
        "probe", attributes={"nodus.node_id": target.node_id, "url.full": target.url}
    ) as span:
        result = await _probe_target(
            client, target, attempts, request_timeout, allow_private, tracer
        )
        span.set_attribute("nodus.probe.attempts", result.attempts)
        span.set_attribute("nodus.probe.answered", len(result.rtt_us))
        span.set_attribute("nodus.probe.outcome", "ok" if result.rtt_us else str(result.error))
        return result


async def _probe_target(
    client: httpx.AsyncClient,
    target: Target,
    attempts: int,
    request_timeout: float,
    allow_private: bool,
    tracer: Tracer,
) -> ProbeResult:
    parts = urlsplit(target.url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        return ProbeResult(attempts, (), "invalid_target")
    try:
        addresses = await asyncio.wait_for(_resolve(parts.hostname, parts.port), request_timeout)
    except (OSError, TimeoutError, ValueError):
        return ProbeResult(attempts, (), "dns")
    if not addresses:
        return ProbeResult(attempts, (), "dns")
    if not allow_private and not all(is_global(a) for a in addresses):
        return ProbeResult(attempts, (), "private_address")
    address = addresses[0]
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"http://{host}:{parts.port}{parts.path or HEALTH_PATH}"
    headers = {"host": parts.netloc, "user-agent": USER_AGENT}

    rtts: list[int] = []
    error: str | None = None
    for _ in range(attempts):
        with tracer.start_as_current_span(
            "probe attempt",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "GET", "url.full": url},
        ) as span:
            rtt, problem = await _attempt(client, target, url, headers, request_timeout)
            _record_attempt(span, rtt, problem)
        if rtt is not None:
            rtts.append(rtt)
        else:
            error = problem
    return ProbeResult(attempts, tuple(rtts), error)


def _record_attempt(span: Span, rtt_us: int | None, problem: str | None) -> None:
    span.set_attribute("nodus.probe.outcome", "ok" if rtt_us is not None else str(problem))
    if rtt_us is not None:
        span.set_attribute("nodus.probe.rtt_us", rtt_us)


async def probe_all(
    targets: Sequence[Target],
    *,
    attempts: int,
    request_timeout: float,
    concurrency: int,
    allow_private: bool,
    tracer: Tracer | None = None,
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
                    tracer=tracer,
                )
                return target.node_id, result

        pairs = await asyncio.gather(*(one(t) for t in targets))
    return dict(pairs)
