"""GET /v1/nodes carries each node's latest score (and its epoch), `min_score` keeps the nodes
scored at least that, and `sort=score` puts the best first: scores come from real scored epochs
(probe rounds signed by a prober, built and recorded by the scorer)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.chain.client import Web3ChainReader
from control_plane.rewards import repository
from control_plane.rewards.posting.gather import build_epoch
from tests.control_plane.rewards.conftest import chain, sessions
from tests.control_plane.rewards.support import (
    NDS,
    Prober,
    add_node,
    fund_pool,
    new_address,
    transaction,
)

__all__ = ["chain", "sessions"]

HOUR = timedelta(hours=1)
ROUNDS = 60


async def _score_epochs(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    answered: dict[str, list[int]],
) -> None:
    """Hourly epochs ending an hour ago; in epoch i, node n answers `answered[n][i]` of 60
    signed probe rounds. Each epoch is built and recorded as the epoch job does."""
    prober = Prober()
    count = len(next(iter(answered.values())))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    async with transaction(sessions) as session:
        await prober.allow(session)
    for epoch in range(1, count + 1):
        start = now - (count + 1 - epoch) * HOUR
        async with transaction(sessions) as session:
            for node, per_epoch in answered.items():
                await prober.rounds(session, node, start, ROUNDS, answered=per_epoch[epoch - 1])
        async with transaction(sessions) as session:
            previous = await repository.cumulative_of(session, chain.chain_id, epoch - 1)
            result = await build_epoch(
                session, chain, epoch, start, start + HOUR, 10 * NDS, previous
            )
            await repository.save_epoch_scores(session, result)


async def _nodes(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/nodes", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _scores_from_history(client: httpx.AsyncClient, node: str) -> tuple[float, int]:
    newest = (await client.get(f"/v1/nodes/{node}/scores")).json()["items"][0]
    return newest["score"], newest["epoch"]


async def test_the_list_shows_the_latest_score_filters_and_sorts_by_it(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
) -> None:
    await fund_pool(chain, 1_000 * NDS)
    created = datetime.now(UTC) - timedelta(days=1)
    async with transaction(sessions) as session:
        steady = await add_node(session, operator=new_address(), created_at=created)
        flaky = await add_node(
            session, operator=new_address(), created_at=created + timedelta(seconds=1)
        )
        unscored = await add_node(
            session,
            operator=new_address(),
            created_at=datetime.now(UTC),  # registered after the scored epochs
        )
    await _score_epochs(sessions, chain, {steady: [60, 60], flaky: [60, 15]})

    listed = {item["id"]: item for item in await _nodes(client)}
    for node in (steady, flaky):
        score, epoch = await _scores_from_history(client, node)
        assert listed[node]["score"] == score
        assert listed[node]["score_epoch"] == epoch == 2
    assert listed[unscored]["score"] is None
    assert listed[unscored]["score_epoch"] is None
    best, worse = listed[steady]["score"], listed[flaky]["score"]
    assert 0 < worse < best <= 1

    assert [n["id"] for n in await _nodes(client, min_score=best)] == [steady]
    assert {n["id"] for n in await _nodes(client, min_score=worse)} == {steady, flaky}
    assert len(await _nodes(client, min_score=0)) == 3
    assert [n["id"] for n in await _nodes(client, sort="score")] == [steady, flaky, unscored]
    assert [n["id"] for n in await _nodes(client)] == [steady, flaky, unscored]  # oldest first

    # Pages by score, one node a page, end exactly where the list ends.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"sort": "score", "limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get("/v1/nodes", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [steady, flaky, unscored]


async def test_a_rebuilt_older_epoch_does_not_replace_a_newer_score(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
) -> None:
    await fund_pool(chain, 1_000 * NDS)
    async with transaction(sessions) as session:
        node = await add_node(session, operator=new_address())
    await _score_epochs(sessions, chain, {node: [60, 30]})
    (listed,) = await _nodes(client)
    assert listed["score_epoch"] == 2

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    async with transaction(sessions) as session:  # epoch 1 built again (a re-post)
        result = await build_epoch(session, chain, 1, now - 3 * HOUR, now - 2 * HOUR, NDS, {})
        await repository.save_epoch_scores(session, result)

    (again,) = await _nodes(client)
    assert (again["score"], again["score_epoch"]) == (listed["score"], 2)


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_bad_scores_sorts_and_cursors_are_422(client: httpx.AsyncClient) -> None:
    by_creation = _cursor(["2026-01-01T00:00:00+00:00", "0x" + "ab" * 32])
    by_score = _cursor([5, "2026-01-01T00:00:00+00:00", "0x" + "ab" * 32])
    for params in (
        {"min_score": 1.5},
        {"min_score": -0.1},
        {"sort": "latency"},
        {"sort": "score", "cursor": by_creation},  # a cursor of the other order
        {"cursor": by_score},
        {
            "sort": "score",
            "cursor": _cursor([10**7, "2026-01-01T00:00:00+00:00", "0x" + "ab" * 32]),
        },
        {"sort": "score", "cursor": _cursor([0.5, "2026-01-01T00:00:00+00:00", "0x" + "ab" * 32])},
    ):
        response = await client.get("/v1/nodes", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "invalid"
