"""A token bucket per client IP for the unauthenticated sign-in routes (nonce, login, agent
challenge, agent login).

Per replica and in memory: with N replicas a client gets up to N times the rate. That is the
intent: the limit only keeps one client from burning CPU (signature recovery) and database rows
(nonces) in bulk; it is not a quota. The client IP is the connection's peer as uvicorn reports
it, or, behind a proxy listed in `NODUS_TRUSTED_PROXIES`, the right-most address in
`X-Forwarded-For` that is not a trusted proxy (../proxies.py), so clients cannot spoof it.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from control_plane.errors import RateLimited

# Generous: a person signing in needs two or three requests; a script gets 30 a minute.
REQUESTS_PER_MINUTE = 30
# Buckets kept at most; beyond it the least recently seen client's bucket is dropped (it starts
# over full), so memory stays bounded whatever the number of client addresses.
MAX_TRACKED_CLIENTS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    refilled_at: float


class TokenBucketLimiter:
    """`capacity` requests at once, refilled at `capacity` per `period` seconds, per key."""

    def __init__(
        self,
        capacity: int = REQUESTS_PER_MINUTE,
        period: float = 60.0,
        max_keys: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.rate = capacity / period  # tokens per second
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Takes one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.capacity), refilled_at=now)
        else:
            elapsed = now - bucket.refilled_at
            bucket.tokens = min(float(self.capacity), bucket.tokens + elapsed * self.rate)
            bucket.refilled_at = now
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def _limiter(request: Request) -> TokenBucketLimiter:
    # One limiter per application (so each app, and each test's app, starts with full buckets).
    limiter: TokenBucketLimiter | None = getattr(request.app.state, "auth_rate_limiter", None)
    if limiter is None:
        limiter = TokenBucketLimiter()
        request.app.state.auth_rate_limiter = limiter
    return limiter


def client_key(host: str) -> str:
    """Whom a bucket belongs to: an IPv4 address, or an IPv6 client's /64 (one subscriber line
    gets a whole /64 and could otherwise rotate through it to dodge the limit)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _raise_if_waiting(wait: float) -> None:
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise RateLimited(
            f"too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def spend_config_change(request: Request, wallet: str, per_minute: int) -> None:
    """Takes one of the wallet's config changes (issue or revoke), or answers 429 with
    `Retry-After`. Every change bumps a node's revision and wakes its agent, so a wallet
    churning configs would force every agent to re-sync; this bounds it. Per replica, in
    memory, like the sign-in limit."""
    limiter: TokenBucketLimiter | None = getattr(request.app.state, "config_change_limiter", None)
    if limiter is None or limiter.capacity != per_minute:
        limiter = TokenBucketLimiter(capacity=per_minute)
        request.app.state.config_change_limiter = limiter
    _raise_if_waiting(limiter.take(wallet.lower()))


def rate_limit(route: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that spends one of the client's tokens for `route` (each route has its own
    bucket per client), or answers 429 with `Retry-After`."""

    async def dependency(request: Request) -> None:
        client = client_key(request.client.host if request.client is not None else "unknown")
        _raise_if_waiting(_limiter(request).take(f"{route} {client}"))

    return dependency
