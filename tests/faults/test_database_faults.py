"""The database stopped or frozen under the real application: every route that needs it answers
503 `database_unavailable` with Retry-After (logged as one line, no traceback), requests are
bounded, `/readyz` answers, every acknowledged write is there afterwards, and the service
recovers when the database returns."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.faults.conftest import client_for
from tests.support.pgcluster import PostgresCluster

# Generous: a request must be answered (not hang); this is no latency assertion.
ANSWER_WITHIN = 60.0

# Routes that read or write the database, with and without credentials: an API key and a node
# token are looked up in it too.
ROUTES = [
    ("GET", "/v1/auth/nonce", {}),
    ("GET", "/v1/nodes", {}),
    ("GET", "/v1/epochs/1", {}),
    ("GET", "/v1/configs", {"Authorization": "Bearer nds_abcd1234_" + "a" * 43}),
    ("GET", "/v1/api-keys", {"Authorization": "Bearer nds_abcd1234_" + "b" * 43}),
]


async def answer(client: httpx.AsyncClient, method: str, path: str, **kw: object) -> httpx.Response:
    return await asyncio.wait_for(client.request(method, path, **kw), ANSWER_WITHIN)  # type: ignore[arg-type]


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] == "database_unavailable"


async def nonces_stored(url: str) -> list[str]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch("SELECT nonce FROM auth_nonces")
    finally:
        await connection.close()
    return [row["nonce"] for row in rows]


async def test_stopped_database_is_a_503_with_retry_after_logged_once(
    cluster: PostgresCluster, cluster_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(cluster_app) as client:
        assert (await answer(client, "GET", "/v1/auth/nonce")).status_code == 200
        cluster.stop()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for method, path, headers in ROUTES:
                assert_database_unavailable(await answer(client, method, path, headers=headers))
            ready = await answer(client, "GET", "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False
        errors = [r for r in caplog.records if r.name == "nodus.errors"]
        # One line per failed request, and no traceback logged by anyone (the peer feed's own
        # reconnect warning is about its LISTEN connection, not a request).
        assert len(errors) == len(ROUTES), [r.getMessage() for r in errors]
        assert all("database unavailable" in r.getMessage() for r in errors)
        assert not [r for r in caplog.records if r.exc_info is not None]
        cluster.start()
        for _ in range(100):  # the pool drops its dead connections and reconnects
            response = await answer(client, "GET", "/v1/auth/nonce")
            if response.status_code == 200:
                break
            assert_database_unavailable(response)
            await asyncio.sleep(0.2)
        assert response.status_code == 200


async def test_frozen_database_answers_503_and_loses_no_acknowledged_write(
    cluster: PostgresCluster, cluster_app: FastAPI, cluster_database_url: str
) -> None:
    acknowledged: list[str] = []
    refused = 0

    async def write(index: int) -> None:
        nonlocal refused
        async with client_for(cluster_app, f"198.51.100.{index % 200 + 1}") as client:
            response = await answer(client, "GET", "/v1/auth/nonce")
        if response.status_code == 200:
            acknowledged.append(response.json()["nonce"])
        else:
            assert_database_unavailable(response)
            refused += 1

    before = [asyncio.create_task(write(i)) for i in range(20)]
    await asyncio.gather(*before)
    cluster.freeze()
    try:
        during = [asyncio.create_task(write(100 + i)) for i in range(20)]
        async with client_for(cluster_app) as client:
            ready = await answer(client, "GET", "/readyz")
            assert ready.status_code == 503
            for method, path, headers in ROUTES[1:]:
                assert_database_unavailable(await answer(client, method, path, headers=headers))
        await asyncio.gather(*during)
    finally:
        cluster.thaw()
    assert refused >= 1  # the freeze was seen
    stored = await nonces_stored(cluster_database_url)
    assert set(acknowledged) <= set(stored)  # no acknowledged write lost
    assert len(stored) == len(set(stored))  # none stored twice
    async with client_for(cluster_app, "198.51.100.250") as client:
        for _ in range(100):
            response = await answer(client, "GET", "/v1/auth/nonce")
            if response.status_code == 200:
                break
            await asyncio.sleep(0.2)
    assert response.status_code == 200
