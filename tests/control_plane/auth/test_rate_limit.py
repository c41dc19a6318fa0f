"""The per-client token bucket on the unauthenticated sign-in routes."""

from __future__ import annotations

import httpx
import pytest

from control_plane.auth.rate_limit import REQUESTS_PER_MINUTE, TokenBucketLimiter, client_key


async def test_nonce_route_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    for _ in range(REQUESTS_PER_MINUTE):
        assert (await client.get("/v1/auth/nonce")).status_code == 200

    limited = await client.get("/v1/auth/nonce")

    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    # Each route has its own bucket: signing in is still possible (an unregistered node is a
    # 404, not a 429).
    assert (
        await client.post("/v1/agent/challenge", json={"node_id": "0x" + "1" * 64})
    ).status_code == 404


async def test_login_is_limited_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    statuses = [
        (await client.post("/v1/auth/login", json={})).status_code
        for _ in range(REQUESTS_PER_MINUTE + 1)
    ]
    assert statuses == [422] * REQUESTS_PER_MINUTE + [429]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_and_is_per_key() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(capacity=2, period=10.0, clock=clock)

    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(5.0)
    assert limiter.take("b") == 0.0
    clock.now += 5.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(5.0)
    clock.now += 100.0  # a long idle refills to capacity, not beyond
    assert [limiter.take("a") for _ in range(3)][2] > 0


def test_tracked_clients_are_bounded() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(capacity=1, period=60.0, max_keys=3, clock=clock)
    for key in "abcd":
        limiter.take(key)
    assert limiter.take("d") > 0  # recent: still limited
    assert limiter.take("a") == 0.0  # evicted as least recently seen: starts over


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("198.18.0.7") == "198.18.0.7"
    assert client_key("testclient") == "testclient"
