"""Limits on `POST /v1/probes`, which anyone can call: recovering a signature costs about 0.3 ms
of the event loop's CPU, so the intake spends it last and bounds it.

- per client IP (`NODUS_PROBER_POSTS_PER_MINUTE`): a token per post, taken before the body is
  validated; beyond it 429 with `Retry-After`;
- per prober (`NODUS_PROBER_SAMPLES_PER_MINUTE`): the new samples a prober may have checked and
  stored. Checked before any signature is recovered, spent only once the batch verified, so a
  forger claiming an allow-listed prober's address cannot use up that prober's budget.

The service checks everything cheap first (age of the rounds, the allow-list, samples already
stored or for unknown nodes, which are never verified) and recovers signatures last, stopping at
the first bad one. Per replica and in memory, like the sign-in limits (auth/rate_limit.py).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from control_plane.auth.rate_limit import TokenBucketLimiter, client_key
from control_plane.errors import RateLimited
from control_plane.prober.settings import ProberSettings

MAX_TRACKED_KEYS = 10_000


@dataclass(slots=True)
class _Budget:
    tokens: float
    refilled_at: float


class SampleBudget:
    """`capacity` samples per `period` seconds per prober: `wait` to check, `spend` to take."""

    def __init__(
        self, capacity: int, period: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.rate = capacity / period
        self.clock = clock
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()

    def _refilled(self, key: str) -> _Budget:
        now = self.clock()
        budget = self._budgets.pop(key, None) or _Budget(float(self.capacity), now)
        budget.tokens = min(
            float(self.capacity), budget.tokens + (now - budget.refilled_at) * self.rate
        )
        budget.refilled_at = now
        self._budgets[key] = budget
        while len(self._budgets) > MAX_TRACKED_KEYS:
            self._budgets.popitem(last=False)
        return budget

    def wait(self, key: str, samples: int) -> float:
        """0.0 if `key` may have `samples` more now, else the seconds until it may."""
        budget = self._refilled(key)
        missing = min(samples, self.capacity) - budget.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def spend(self, key: str, samples: int) -> None:
        budget = self._refilled(key)
        budget.tokens = max(0.0, budget.tokens - samples)


def rate_limited(wait: float, what: str) -> RateLimited:
    retry_after = max(1, math.ceil(wait))
    return RateLimited(
        f"{what}; retry in {retry_after} s", headers={"Retry-After": str(retry_after)}
    )


def _state(request: Request, settings: ProberSettings) -> tuple[TokenBucketLimiter, SampleBudget]:
    # One pair per application (each test's app starts with full buckets); rebuilt if the
    # settings changed.
    key = (settings.posts_per_minute, settings.samples_per_minute)
    found: tuple[tuple[int, int], TokenBucketLimiter, SampleBudget] | None = getattr(
        request.app.state, "probe_intake_limits", None
    )
    if found is None or found[0] != key:
        found = (key, TokenBucketLimiter(capacity=key[0]), SampleBudget(key[1]))
        request.app.state.probe_intake_limits = found
    return found[1], found[2]


def take_post_token(request: Request, settings: ProberSettings) -> SampleBudget:
    """Spends the client's token for this post (429 if none is left); the probers' budget."""
    posts, budget = _state(request, settings)
    client = client_key(request.client.host if request.client is not None else "unknown")
    wait = posts.take(f"probes {client}")
    if wait > 0:
        raise rate_limited(wait, "too many probe posts from this address")
    return budget
