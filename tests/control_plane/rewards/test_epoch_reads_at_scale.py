"""An epoch's reads at a scale one statement cannot read within the statement timeout: the
samples and reports stream in fetches, each bounded on its own, so the epoch job still gets
every row (before, an epoch of 30,000 nodes failed the default 5 s timeout on its samples and
was never scored)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.agent.feed import asyncpg_dsn
from control_plane.db import DatabaseTimeouts, make_engine, make_sessionmaker
from control_plane.prober.repository import samples_between
from control_plane.rewards.repository import epoch_nodes, peer_reports
from tests.support.epoch_seed import END, PROBERS, ROUNDS, START, seed_epoch

NODES = 4_000  # 144,000 samples: about 2 s to read here, several times the timeout below
STATEMENT_SECONDS = 0.25
ROWS_PER_FETCH = 1_000  # about 15 ms a fetch here


@pytest.fixture
async def tight_sessions(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a database holding NODES operators' epoch, each statement bounded by
    STATEMENT_SECONDS (the server's statement_timeout and the client's command timeout)."""
    connection = await asyncpg.connect(asyncpg_dsn(clean_database))
    try:
        await seed_epoch(connection, NODES)
    finally:
        await connection.close()
    engine = make_engine(clean_database, DatabaseTimeouts(statement_seconds=STATEMENT_SECONDS))
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_an_epoch_too_large_for_one_statement_is_read_whole(
    tight_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with tight_sessions() as session, session.begin():
        nodes = await epoch_nodes(session, START, END, rows_per_fetch=ROWS_PER_FETCH)
        samples = await samples_between(session, START, END, rows_per_fetch=ROWS_PER_FETCH)
        reports = await peer_reports(session, START, END, rows_per_fetch=ROWS_PER_FETCH)

    assert len(nodes) == len({node.node_id for node in nodes}) == NODES
    # Every sample once: no fetch lost or repeated rows at its boundaries.
    assert len(samples) == len({stored.id for stored in samples}) == NODES * PROBERS * ROUNDS
    assert {stored.sample.node_id for stored in samples} == {node.node_id for node in nodes}
    # Each node's peer: a baseline before the epoch and two reports in it, in order, each
    # in-epoch report attributed to the paying subscriber.
    assert len(reports) == 3 * NODES
    assert [report.baseline for report in reports[:3]] == [True, False, False]
    assert all(report.wallet is not None for report in reports if not report.baseline)


async def test_the_same_samples_in_one_statement_outlast_the_timeout(
    tight_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The control: this epoch is beyond one statement, so the test above is about streaming."""
    async with tight_sessions() as session, session.begin():
        # A server-side cursor's fetch raises the driver's own error, not SQLAlchemy's wrapper.
        timed_out = (DBAPIError, asyncpg.QueryCanceledError)
        with pytest.raises(timed_out, match="statement timeout"):
            await samples_between(session, START, END, rows_per_fetch=NODES * PROBERS * ROUNDS)
