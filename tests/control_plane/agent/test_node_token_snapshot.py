"""A fleet of agents polling together costs the database one read of the chain mirror per
`node_token_recheck_seconds`, not one per agent (auth/node_credentials.py): before, 10,000
long-polls coming back at once each took a pooled connection to re-check their token, and
issuance starved behind them (bench/report.md, P8)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from control_plane.settings import Settings
from tests.control_plane.agent.conftest import World, node_token

PEERS = "/v1/agent/peers"
RECHECK_SECONDS = 2.5
AGENTS = 40


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"node_token_recheck_seconds": RECHECK_SECONDS})


def mirror_reads(sql: list[str]) -> int:
    return sum("FROM chain_nodes" in statement for statement in sql)


async def test_polls_of_many_nodes_read_the_chain_mirror_once_per_recheck_period(
    client: httpx.AsyncClient,
    settings: Settings,
    world: World,
    record_statements: Callable[[], Any],
) -> None:
    nodes = [await world.node() for _ in range(AGENTS)]
    headers = [node_token(settings, node) for node in nodes]

    async def poll_all() -> list[int]:
        answers = await asyncio.gather(
            *(client.get(PEERS, params={"since": 0}, headers=h) for h in headers)
        )
        return [answer.status_code for answer in answers]

    await asyncio.sleep(RECHECK_SECONDS * 1.2)  # whatever snapshot exists is due
    with record_statements() as due:
        assert await poll_all() == [200] * AGENTS
    with record_statements() as fresh:
        assert await poll_all() == [200] * AGENTS
    await asyncio.sleep(RECHECK_SECONDS * 1.2)
    with record_statements() as due_again:
        assert await poll_all() == [200] * AGENTS

    assert mirror_reads(due.sql) == 1  # forty agents, one read
    assert mirror_reads(fresh.sql) == 0
    assert mirror_reads(due_again.sql) == 1
