"""The control-plane client against a real local HTTP server: sign-in by signing the challenge,
token renewal (before expiry and on 401), retries with backoff on 5xx/429/network errors, the
circuit breaker, and long-poll timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node_agent.client import ControlPlaneClient, Refused, Unavailable
from node_agent.config import AgentConfig
from node_agent.resilience import BreakerState, CircuitBreaker
from tests.node_agent.fake_control_plane import (
    CHALLENGE,
    HEARTBEAT,
    LOGIN,
    PEERS,
    FakeControlPlane,
    free_port,
    wg_peer,
)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # read afresh (mypy would narrow `breaker.state` across asserts)


@pytest.fixture
async def client(
    fake: FakeControlPlane, make_config: Callable[..., AgentConfig], account: LocalAccount
) -> AsyncIterator[ControlPlaneClient]:
    config = make_config(fake.url, CONTROL_PLANE_RETRY_ATTEMPTS="3")
    async with ControlPlaneClient(config.control_plane, config.node_id, account) as http:
        yield http


async def test_signs_in_with_the_agent_key_and_polls(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    fake.set_peers([wg_peer(2)])

    body = await client.poll_peers(None, 0)

    assert body["revision"] == 1
    assert body["changed"] is True
    assert fake.logins == 1
    assert fake.requests[:3] == [("POST", CHALLENGE), ("POST", LOGIN), ("GET", PEERS)]
    await client.poll_peers(1, 0)
    assert fake.logins == 1  # the token is reused


async def test_another_key_is_refused(
    fake: FakeControlPlane, make_config: Callable[..., AgentConfig]
) -> None:
    config = make_config(fake.url)
    async with ControlPlaneClient(config.control_plane, config.node_id, Account.create()) as c:
        with pytest.raises(Refused, match="not the node's agent key") as refused:
            await c.poll_peers(None, 0)
    assert refused.value.status == 401


async def test_a_401_signs_in_again_once(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    await client.heartbeat({"x": 1})
    fake.tokens.clear()  # the control plane forgot every token (restart with a new secret)

    await client.heartbeat({"x": 2})

    assert fake.logins == 2
    assert [h["x"] for h in fake.heartbeats] == [1, 2]


async def test_the_token_is_renewed_before_it_expires(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    fake.token_ttl = 2  # renewed a fifth of its life early: after 1.6 s
    await client.heartbeat({})
    await asyncio.sleep(1.7)

    await client.heartbeat({})

    assert fake.logins == 2
    assert fake.count(HEARTBEAT) == 2  # no request was refused on the way


async def test_5xx_and_429_are_retried_then_succeed(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    await client.heartbeat({})
    fake.failures[HEARTBEAT] = [503, 429]

    await client.heartbeat({"after": "retries"})

    assert fake.count(HEARTBEAT) == 4
    assert fake.heartbeats[-1] == {"after": "retries"}
    assert state_of(client.breaker) is BreakerState.CLOSED


async def test_persistent_failure_is_unavailable_after_the_attempts(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    await client.heartbeat({})
    fake.failures[HEARTBEAT] = [500, 502, 504, 500]

    with pytest.raises(Unavailable, match="failed 3 times; last: HTTP 504"):
        await client.heartbeat({})
    assert fake.count(HEARTBEAT) == 4


async def test_a_4xx_is_not_retried(fake: FakeControlPlane, client: ControlPlaneClient) -> None:
    await client.heartbeat({})
    fake.failures[HEARTBEAT] = [422]

    with pytest.raises(Refused, match="scripted 422"):
        await client.heartbeat({})
    assert fake.count(HEARTBEAT) == 2


async def test_the_breaker_opens_fails_fast_then_lets_a_trial_through(
    fake: FakeControlPlane, make_config: Callable[..., AgentConfig], account: LocalAccount
) -> None:
    config = make_config(
        fake.url,
        CONTROL_PLANE_RETRY_ATTEMPTS="1",
        CONTROL_PLANE_BREAKER_FAILURES="3",
        CONTROL_PLANE_BREAKER_RESET_SECONDS="0.5",
    )
    async with ControlPlaneClient(config.control_plane, config.node_id, account) as client:
        await client.heartbeat({})
        fake.failures[HEARTBEAT] = [503, 503, 503]
        for _ in range(3):
            with pytest.raises(Unavailable):
                await client.heartbeat({})
        assert state_of(client.breaker) is BreakerState.OPEN

        sent = fake.count(HEARTBEAT)
        with pytest.raises(Unavailable, match="circuit open"):
            await client.heartbeat({})
        assert fake.count(HEARTBEAT) == sent  # failed fast: nothing was sent

        await asyncio.sleep(0.5)
        await client.heartbeat({"trial": True})  # half-open: the trial succeeds
        assert state_of(client.breaker) is BreakerState.CLOSED
        assert fake.heartbeats[-1] == {"trial": True}


async def test_an_unreachable_control_plane_is_unavailable(
    make_config: Callable[..., AgentConfig], account: LocalAccount
) -> None:
    config = make_config(f"http://127.0.0.1:{free_port()}")
    async with ControlPlaneClient(config.control_plane, config.node_id, account) as client:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="ConnectError"):
            await client.poll_peers(None, 30)
        assert time.monotonic() - started < 2


async def test_a_long_poll_outlives_the_request_timeout(
    fake: FakeControlPlane, make_config: Callable[..., AgentConfig], account: LocalAccount
) -> None:
    config = make_config(fake.url, CONTROL_PLANE_REQUEST_TIMEOUT_SECONDS="0.5")
    async with ControlPlaneClient(config.control_plane, config.node_id, account) as client:
        fake.set_peers([])
        started = time.monotonic()

        body = await client.poll_peers(1, 1)  # waits 1 s > the 0.5 s timeout, and answers

        assert body == {"revision": 1, "changed": False, "peers": None}
        assert time.monotonic() - started >= 1
        assert fake.polls[-1] == {"since": 1, "wait": 1}


async def test_a_long_poll_returns_as_soon_as_the_set_changes(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    fake.set_peers([])
    poll = asyncio.create_task(client.poll_peers(1, 30))
    await asyncio.sleep(0.3)
    fake.set_peers([wg_peer(2)])

    body = await asyncio.wait_for(poll, 5)

    assert body["revision"] == 2
    assert len(body["peers"]) == 1


async def test_metrics_are_sent_in_chunks_of_10000(
    fake: FakeControlPlane, client: ControlPlaneClient
) -> None:
    entries = [{"public_key": str(i), "rx_bytes": 1, "tx_bytes": 1} for i in range(25_000)]
    assert await client.metrics(entries) == 25_000
    assert [len(m["peers"]) for m in fake.metrics] == [10_000, 10_000, 5_000]
