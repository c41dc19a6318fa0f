"""Full-jitter backoff and the circuit breaker."""

from __future__ import annotations

import random

from node_agent.resilience import Backoff, BreakerState, CircuitBreaker


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # read afresh (mypy would narrow `breaker.state` across asserts)


def test_full_jitter_stays_under_a_growing_capped_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=8.0, rng=random.Random(1))
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.ceiling(10_000) == 8.0
    for attempt in range(20):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= backoff.ceiling(attempt) for d in delays)
    spread = [backoff.delay(5) for _ in range(1000)]
    assert min(spread) < 1.0
    assert max(spread) > 7.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_half_opens_later() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()

    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == 10
    clock.now = 10
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # and only one
    breaker.record_failure()  # the trial failed: open again
    assert state_of(breaker) is BreakerState.OPEN
    clock.now = 20
    assert breaker.allow()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_a_released_trial_lets_another_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_seconds=1, clock=clock)
    breaker.record_failure()
    clock.now = 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()
