"""Issue 9, finding 3: `POST /v1/probes` is unauthenticated, and it recovered every sample's
signature before the allow-list check, so a replayed 1,000-sample batch cost ~0.3 s of the event
loop per post. The attacker here replays public samples, forges batches in a stranger's name or
in an allow-listed prober's, and floods; every signature recovery is counted with a spy on the
service's `verify_sample` (no timing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.prober import service
from control_plane.prober.router import get_prober_settings
from control_plane.prober.settings import ProberSettings
from control_plane.prober.signing import Sample, verify_sample
from tests.control_plane.prober.test_api import body
from tests.control_plane.rewards.support import Prober, add_node, new_address, transaction

FAKE_SIGNATURE = "0x" + "ab" * 65


@pytest.fixture
def recoveries(monkeypatch: pytest.MonkeyPatch) -> list[Sample]:
    """Every signature the intake checks, in order."""
    seen: list[Sample] = []
    real: Callable[[Sample, int, str], bool] = verify_sample

    def spy(sample: Sample, chain_id: int, signature: str) -> bool:
        seen.append(sample)
        return real(sample, chain_id, signature)

    monkeypatch.setattr(service, "verify_sample", spy)
    return seen


def limits(app: FastAPI, **settings: Any) -> None:
    configured = ProberSettings(**settings)
    app.dependency_overrides[get_prober_settings] = lambda: configured


async def nodes(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    async with transaction(sessions) as session:
        return [await add_node(session, operator=new_address()) for _ in range(count)]


async def test_a_replayed_batch_is_counted_once_and_costs_no_recovery(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    recoveries: list[Sample],
) -> None:
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
    two = await nodes(sessions, 2)
    now = int(time.time())
    batch = [body(prober, node, now - i) for node in two for i in range(500)]

    first = await api.post("/v1/probes", json={"samples": batch})
    assert first.json() == {"accepted": 1_000, "duplicates": 0, "unknown_nodes": []}
    assert len(recoveries) == 1_000
    recoveries.clear()

    # Anyone can replay it (GET /v1/probes publishes every signature): counted once, for free.
    for _ in range(3):
        replay = await api.post("/v1/probes", json={"samples": batch})
        assert replay.json() == {"accepted": 0, "duplicates": 1_000, "unknown_nodes": []}
    assert recoveries == []


async def test_a_stranger_is_refused_before_any_signature_work(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], recoveries: list[Sample]
) -> None:
    two = await nodes(sessions, 2)
    stranger = new_address()
    now = int(time.time())
    batch = [
        {**body(Prober(), node, now - i), "prober": stranger, "signature": FAKE_SIGNATURE}
        for node in two
        for i in range(500)
    ]
    refused = await api.post("/v1/probes", json={"samples": batch})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert recoveries == []


async def test_a_forged_batch_in_an_allow_listed_name_stops_at_the_first_bad_signature(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], recoveries: list[Sample]
) -> None:
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
    two = await nodes(sessions, 2)
    now = int(time.time())
    batch = [
        {**body(prober, node, now - i), "signature": FAKE_SIGNATURE}
        for node in two
        for i in range(500)
    ]
    forged = await api.post("/v1/probes", json={"samples": batch})
    assert forged.status_code == 401
    assert len(recoveries) == 1


async def test_posts_are_rate_limited_per_client_address(
    api: httpx.AsyncClient, app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    limits(app, posts_per_minute=2)
    [node] = await nodes(sessions, 1)
    junk = {"samples": [body(Prober(), node, int(time.time()))]}
    assert [(await api.post("/v1/probes", json=junk)).status_code for _ in range(2)] == [403, 403]
    flooded = await api.post("/v1/probes", json=junk)
    assert flooded.status_code == 429
    assert flooded.json()["error"]["code"] == "rate_limited"
    assert int(flooded.headers["retry-after"]) >= 1
    # Even an invalid body is refused before it is looked at.
    assert (await api.post("/v1/probes", json={"samples": []})).status_code == 429


async def test_a_probers_samples_are_rate_limited_and_forgers_cannot_spend_its_budget(
    api: httpx.AsyncClient,
    app: FastAPI,
    sessions: async_sessionmaker[AsyncSession],
    recoveries: list[Sample],
) -> None:
    limits(app, samples_per_minute=3)
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
    [node] = await nodes(sessions, 1)
    now = int(time.time())

    forged = [{**body(prober, node, now - i), "signature": FAKE_SIGNATURE} for i in range(3)]
    assert (await api.post("/v1/probes", json={"samples": forged})).status_code == 401

    honest = [body(prober, node, now - i) for i in range(3)]
    accepted = await api.post("/v1/probes", json={"samples": honest})
    assert accepted.json()["accepted"] == 3
    recoveries.clear()

    more = await api.post("/v1/probes", json={"samples": [body(prober, node, now - 3)]})
    assert more.status_code == 429
    assert int(more.headers["retry-after"]) >= 1
    assert prober.address in more.json()["error"]["message"]
    assert recoveries == []  # refused before its signature was looked at


async def test_batches_are_bounded(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], recoveries: list[Sample]
) -> None:
    [node] = await nodes(sessions, 1)
    item = {**body(Prober(), node, int(time.time())), "signature": FAKE_SIGNATURE}
    too_many = await api.post("/v1/probes", json={"samples": [item] * 1_001})
    assert too_many.status_code == 422
    too_big = await api.post("/v1/probes", content=b'{"samples": [' + b" " * (1024 * 1024) + b"]}")
    assert too_big.status_code == 413
    assert recoveries == []
