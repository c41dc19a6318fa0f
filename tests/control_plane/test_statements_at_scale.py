"""Statements whose inputs grow with the network stay within PostgreSQL's 32,767 bind parameters:
a probe round over thousands of live nodes is stored (it stopped at 4,682 nodes, and without
samples no epoch is ever scored), and the renewals of a long catch-up find their subscribers'
nodes (the indexer stopped for good past 32,767 renewed subscribers in one run)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.agent.feed import asyncpg_dsn
from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.prober.repository import insert_samples
from control_plane.prober.signing import Sample
from control_plane.subscriptions.repository import SubscriberRepository
from tests.support.epoch_seed import END, seed_epoch

NODES = 5_000  # 35,000 parameters as one INSERT of a round's samples


def node_id(n: int) -> str:
    return "0x" + f"{n:064x}"  # as tests/support/epoch_seed.py numbers them


def prober(p: int) -> str:
    return "0x" + f"{p + 160:040x}"


def subscriber(n: int) -> str:
    return "0x" + f"{n + 20_000_000:040x}"


@pytest.fixture
async def sessions(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    connection = await asyncpg.connect(asyncpg_dsn(clean_database))
    try:
        await seed_epoch(connection, NODES)
    finally:
        await connection.close()
    engine = make_engine(clean_database)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_a_probe_round_over_thousands_of_nodes_is_stored_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    round_at = int(END.timestamp())  # a round after the seeded epoch's
    signed = [
        (Sample(prober(1), node_id(n), round_at, 3, (20_000 + n,), None), "0x" + "11" * 65)
        for n in range(1, NODES + 1)
    ]
    async with unit_of_work(sessions) as session:
        assert await insert_samples(session, signed) == NODES
    async with unit_of_work(sessions) as session:
        assert await insert_samples(session, signed) == 0  # a replayed round adds nothing


async def test_the_renewals_of_a_long_catch_up_find_their_subscribers_nodes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    paying = [subscriber(n) for n in range(1, NODES + 1)]
    newcomers = ["0x" + f"{n:040x}" for n in range(30_000_000, 30_030_000)]  # no configs yet
    async with unit_of_work(sessions) as session:
        by_node = await SubscriberRepository(session).live_configs_by_node(paying + newcomers)
    assert sorted(by_node) == [node_id(n) for n in range(1, NODES + 1)]
    assert all(len(configs) == 1 for configs in by_node.values())
