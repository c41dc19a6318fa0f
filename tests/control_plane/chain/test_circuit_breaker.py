"""The chain reader's circuit breaker: open fails fast, half-open admits exactly one trial."""

from __future__ import annotations

from control_plane.chain.client import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_half_open_admits_one_trial_and_its_verdict_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=clock)
    assert breaker.admit() == "closed"
    breaker.failure()
    breaker.failure()
    assert breaker.admit() is None  # open: fail fast
    clock.now = 10
    assert breaker.admit() == "trial"
    assert [breaker.admit() for _ in range(50)] == [None] * 50  # the others fail fast
    breaker.failure()  # the trial failed: open for another cooldown
    clock.now = 15
    assert breaker.admit() is None
    clock.now = 20
    assert breaker.admit() == "trial"
    breaker.success()
    assert [breaker.admit() for _ in range(3)] == ["closed"] * 3


def test_a_trial_ended_without_verdict_frees_the_next_one() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=1, clock=clock)
    breaker.failure()
    clock.now = 1
    assert breaker.admit() == "trial"
    breaker.release_trial()  # cancelled
    assert breaker.admit() == "trial"
