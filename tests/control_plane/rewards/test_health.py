"""GET /v1/nodes/{id}/health (the probers' view, each verdict with a reason code and a fix) and
POST /v1/nodes/{id}/probe (one probe now, for the node's agent or operator; rate limited per
node; not stored). Probes go over real HTTP to the node agent's own health server, which signs
with the agent's own code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.prober.models import ProbeSample
from control_plane.prober.router import get_prober_settings
from control_plane.prober.service import run_probe_round
from control_plane.prober.settings import ProberSettings
from control_plane.settings import Settings
from node_agent.health import HealthProver, start_health_server
from tests.control_plane.prober.health import closed_port, health_server
from tests.control_plane.rewards.support import (
    CHAIN_ID,
    Prober,
    add_node,
    new_address,
    new_node_id,
    transaction,
)
from tests.support.builders import agent_of, node_headers, wallet_headers

LOCAL = ProberSettings(allow_private_targets=True, samples=2, timeout_seconds=1.0)


@pytest.fixture
def local_probes(app: FastAPI) -> ProberSettings:
    """Probes may reach 127.0.0.1 (where the test agents listen)."""
    app.dependency_overrides[get_prober_settings] = lambda: LOCAL
    return LOCAL


@asynccontextmanager
async def agent_health(node_id: str, key: LocalAccount) -> AsyncIterator[str]:
    """The node agent's real health server for `node_id`, signing with `key`; its endpoint."""
    server = await start_health_server(
        "127.0.0.1",
        0,
        lambda: (200, {"status": "ok", "revision": 1, "peers": 0}),
        HealthProver(node_id, key),
    )
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def _round(sessions: async_sessionmaker[AsyncSession], prober: Prober, at: int) -> None:
    async with transaction(sessions) as session:
        await run_probe_round(session, CHAIN_ID, prober.account, LOCAL, now=at)


async def test_health_lists_each_round_with_its_reason_and_fix(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    node, key, prober = new_node_id(), Account.create(), Prober()
    now = int(time.time())
    async with agent_health(node, key) as endpoint:
        async with transaction(sessions) as session:
            await prober.allow(session)
            await add_node(
                session, operator=new_address(), endpoint=endpoint, agent=key.address, node_id=node
            )
        await _round(sessions, prober, now - 60)
    await _round(sessions, prober, now)  # the agent is gone

    response = await api.get(f"/v1/nodes/{node}/health")

    assert response.status_code == 200, response.text
    body = response.json()
    down, up = body["rounds"]
    assert (down["verdict"], down["reason"], down["round"]) == ("down", "refused", now)
    assert "nodus-agent" in down["fix"]
    assert (down["answered"], down["latency_ms"]) == (0, None)
    assert (up["verdict"], up["reason"], up["answered"]) == ("up", "ok", 2)
    assert up["latency_ms"] > 0
    assert up["prober"] == prober.address
    summary = body["summary"]
    assert (summary["verdict"], summary["reason"]) == ("down", "refused")
    assert (summary["probers"], summary["up"]) == (1, 0)
    assert summary["fix"] == down["fix"]
    one = (await api.get(f"/v1/nodes/{node}/health", params={"limit": 1})).json()
    assert [r["round"] for r in one["rounds"]] == [now]
    assert one["summary"] == summary


async def test_a_node_that_is_not_probed_says_why(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with transaction(sessions) as session:
        exiting = await add_node(session, operator=new_address(), active=False)
        unindexed = await add_node(session, operator=new_address(), indexed=False)
        waiting = await add_node(session, operator=new_address())
    expected = {
        exiting: ("down", "not_active_on_chain", "stake"),
        unindexed: ("unknown", "not_indexed", "chain sync"),
        waiting: ("unknown", "never_probed", "probe round"),
    }
    for node, (verdict, reason, hint) in expected.items():
        body = (await api.get(f"/v1/nodes/{node}/health")).json()
        assert (body["summary"]["verdict"], body["summary"]["reason"]) == (verdict, reason)
        assert hint in body["summary"]["fix"]
        assert body["rounds"] == []

    missing = await api.get(f"/v1/nodes/{new_node_id()}/health")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    for limit in (0, 101):
        bad = await api.get(f"/v1/nodes/{waiting}/health", params={"limit": limit})
        assert bad.status_code == 422


async def _probe(api: httpx.AsyncClient, node: str, headers: dict[str, str]) -> httpx.Response:
    return await api.post(f"/v1/nodes/{node}/probe", headers=headers)


async def _stored_samples(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(ProbeSample)) or 0)


async def test_the_agent_gets_one_probe_now_and_then_waits(
    api: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    local_probes: ProberSettings,
) -> None:
    node = new_node_id()
    async with agent_health(node, agent_of(node)) as endpoint:
        async with transaction(sessions) as session:
            await add_node(
                session,
                operator=new_address(),
                endpoint=endpoint,
                agent=agent_of(node).address,
                node_id=node,
            )
        response = await _probe(api, node, node_headers(settings, node))
        again = await _probe(api, node, node_headers(settings, node))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["verdict"], body["reason"], body["node_id"]) == ("up", "ok", node)
    assert body["fix"].startswith("nothing to fix")
    assert isinstance(body["latency_ms"], float)
    assert (body["attempts"], body["answered"], body["stored"]) == (2, 2, False)
    components = {c["name"]: c for c in body["score_components"]}
    assert components["uptime"] == {
        "name": "uptime",
        "value": 1.0,
        "weight": 0.5,
        "contribution": 0.5,
    }
    assert components["latency"]["value"] == 1.0  # a local round trip is well under 50 ms
    assert body["probe_score"] == pytest.approx(0.65)
    assert await _stored_samples(sessions) == 0  # not a round: it does not count for the score

    assert again.status_code == 429
    assert again.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(again.headers["retry-after"]) <= local_probes.on_demand_interval_seconds


@pytest.mark.parametrize("credential", ["wallet token", "API key"])
async def test_a_probe_now_holds_no_database_connection_while_it_waits_on_the_node(
    app: FastAPI,
    api: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    credential: str,
) -> None:
    """A probe waits on the node (up to samples x timeout). The request must not hold one of
    the pool's connections (in an open transaction) meanwhile: operators asking for a few
    dozen slow nodes at once would otherwise take the whole pool, and every other request
    would wait for a connection and fail with 503. An API key is checked in the database, in a
    transaction of its own."""
    slow_probes = ProberSettings(allow_private_targets=True, samples=1, timeout_seconds=10.0)
    app.dependency_overrides[get_prober_settings] = lambda: slow_probes
    operator = new_address()
    headers = wallet_headers(settings, operator)
    if credential == "API key":
        created = await api.post("/v1/api-keys", json={"name": "ops"}, headers=headers)
        assert created.status_code == 201, created.text
        headers = {"authorization": f"Bearer {created.json()['key']}"}
    async with health_server(delay=1.5) as slow:
        async with transaction(sessions) as session:
            node = await add_node(session, operator=operator, endpoint=slow.endpoint)
        request = asyncio.create_task(_probe(api, node, headers))
        await asyncio.wait_for(slow.arrived.wait(), timeout=30)
        held = app.state.engine.pool.checkedout()
        response = await request

    assert response.status_code == 200, response.text
    assert response.json()["reason"] == "unsigned"  # the node answered, without its proof
    assert held == 0


async def test_the_operator_may_ask_and_failures_name_their_reason(
    api: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    local_probes: ProberSettings,
) -> None:
    operator = new_address()
    impostor_key = Account.create()  # answers, but not with the on-chain agent key
    forged, closed, exiting = new_node_id(), new_node_id(), new_node_id()
    async with agent_health(forged, impostor_key) as endpoint:
        async with transaction(sessions) as session:
            await add_node(session, operator=operator, endpoint=endpoint, node_id=forged)
            await add_node(
                session, operator=operator, endpoint=f"127.0.0.1:{closed_port()}", node_id=closed
            )
            await add_node(session, operator=operator, node_id=exiting, active=False)
        headers = wallet_headers(settings, operator)
        results = {
            node: (await _probe(api, node, headers)).json() for node in (forged, closed, exiting)
        }

    assert (results[forged]["verdict"], results[forged]["reason"]) == ("down", "bad_signature")
    assert "agent key" in results[forged]["fix"]
    assert results[closed]["reason"] == "refused"
    assert results[exiting]["reason"] == "not_active_on_chain"
    assert results[exiting]["attempts"] == 0
    for result in results.values():
        assert result["probe_score"] == 0
        assert result["latency_ms"] is None


async def test_only_the_nodes_agent_or_operator_may_ask(
    api: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    local_probes: ProberSettings,
) -> None:
    node, other = new_node_id(), new_node_id()
    async with transaction(sessions) as session:
        await add_node(session, operator=new_address(), node_id=node, agent=agent_of(node).address)
        await add_node(
            session, operator=new_address(), node_id=other, agent=agent_of(other).address
        )

    refusals = {
        "no token": (await _probe(api, node, {})).status_code,
        "another wallet": (
            await _probe(api, node, wallet_headers(settings, new_address()))
        ).status_code,
        "another node's agent": (
            await _probe(api, node, node_headers(settings, other))
        ).status_code,
    }
    assert refusals == {"no token": 401, "another wallet": 403, "another node's agent": 403}
    for headers in (node_headers(settings, node), wallet_headers(settings, new_address())):
        missing = await _probe(api, new_node_id(), headers)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
