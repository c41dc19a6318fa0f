"""P5's database part: what the epoch job's gather step (posting/gather.py) reads for one epoch,
against a migrated scratch PostgreSQL seeded with tests/support/epoch_seed.py's epoch.

The seeded samples carry a placeholder signature (signing millions of samples would dominate
the run); the signature check on read is timed on real signed samples and scaled to the count."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from eth_account import Account

from control_plane.agent.feed import asyncpg_dsn
from control_plane.db import make_engine, make_sessionmaker
from control_plane.migrate import upgrade
from control_plane.prober.repository import samples_between
from control_plane.prober.signing import Sample, sign_sample, verify_sample
from control_plane.rewards import repository
from control_plane.rewards.formula.epoch import prober_views, tally_traffic
from tests.database import admin_database_url, scratch_database
from tests.support.epoch_seed import CHAIN_ID, END, PROBERS, ROUNDS, START, seed_epoch


@dataclass(frozen=True, slots=True)
class DatabaseTimes:
    seed: float
    nodes: float
    samples: float
    signatures: float  # estimated: per-sample check time times the sample count
    reports: float
    previous: float
    tally: float  # prober views and the traffic tally over what was read
    sample_count: int

    @property
    def reads(self) -> float:
        return self.nodes + self.samples + self.reports + self.previous + self.tally


def signature_check_seconds(count: int, trials: int = 50) -> float:
    """The gather's per-sample signature check (verify_sample), timed on real signed samples."""
    account = Account.create()
    prober = account.address.lower()
    signed = []
    for n in range(trials):
        sample = Sample(prober, "0x" + f"{n + 1:064x}", 1_767_225_600, 3, (20_000,), None)
        signed.append((sample, sign_sample(account, sample, CHAIN_ID)))
    started = time.perf_counter()
    for sample, signature in signed:
        if not verify_sample(sample, CHAIN_ID, signature):
            raise AssertionError("a freshly signed sample failed its check")
    return (time.perf_counter() - started) / trials * count


async def _measure(database_url: str, nodes: int) -> DatabaseTimes:
    started = time.perf_counter()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await seed_epoch(connection, nodes)
    finally:
        await connection.close()
    seed = time.perf_counter() - started

    # The epoch job's own bounds (the defaults): its reads stream, each fetch within the
    # statement timeout (in one statement, the samples of 30,000 nodes outlasted it).
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            started = time.perf_counter()
            epoch_nodes = await repository.epoch_nodes(session, START, END)
            nodes_time = time.perf_counter() - started

            started = time.perf_counter()
            stored = await samples_between(session, START, END)
            samples_time = time.perf_counter() - started

            started = time.perf_counter()
            reports = await repository.peer_reports(session, START, END)
            reports_time = time.perf_counter() - started

            started = time.perf_counter()
            await repository.previous_smoothed(session, CHAIN_ID, 2)
            previous_time = time.perf_counter() - started
    finally:
        await engine.dispose()

    if len(epoch_nodes) != nodes or len(stored) != nodes * PROBERS * ROUNDS:
        raise AssertionError("the seeded epoch was not read back whole")
    started = time.perf_counter()
    samples = [s.sample for s in stored]
    prober_views(samples, [node.node_id for node in epoch_nodes])
    own = {n.node_id: frozenset(w for w in (n.operator, n.agent) if w) for n in epoch_nodes}
    traffic = tally_traffic(reports, timedelta(seconds=180), own)
    tally_time = time.perf_counter() - started
    if len(traffic) != nodes:
        raise AssertionError("every seeded node should have paying traffic")
    return DatabaseTimes(
        seed=seed,
        nodes=nodes_time,
        samples=samples_time,
        signatures=signature_check_seconds(len(stored)),
        reports=reports_time,
        previous=previous_time,
        tally=tally_time,
        sample_count=len(stored),
    )


def time_gather(nodes: int) -> DatabaseTimes:
    """Seeds a fresh migrated database with `nodes` operators' epoch and times the gather."""
    with admin_database_url() as admin, scratch_database(admin) as database_url:
        asyncio.run(upgrade(database_url))
        return asyncio.run(_measure(database_url, nodes))
