"""P5's database part: what the epoch job's gather step (posting/gather.py) reads for one epoch,
against a migrated scratch PostgreSQL seeded in-server (INSERT ... SELECT generate_series) with
one node per operator, three probers' twelve rounds of every node, one paying subscriber's
WireGuard config per node and its agent's reports (a baseline and two in the epoch).

The seeded samples carry a placeholder signature (signing millions of samples would dominate
the run); the signature check on read is timed on real signed samples and scaled to the count."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from eth_account import Account

from control_plane.agent.feed import asyncpg_dsn
from control_plane.db import DatabaseTimeouts, make_engine, make_sessionmaker
from control_plane.migrate import upgrade
from control_plane.prober.repository import samples_between
from control_plane.prober.signing import Sample, sign_sample, verify_sample
from control_plane.rewards import repository
from control_plane.rewards.formula.epoch import prober_views, tally_traffic
from tests.database import admin_database_url, scratch_database

CHAIN_ID = 31337
PROBERS = 3
ROUNDS = 12  # one every five minutes of a one-hour epoch
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(hours=1)

# $1: nodes, $2: the epoch's start. Addresses and ids are the node's number in hex.
SEED = [
    """INSERT INTO nodes (id, operator, protocols, endpoint, country, ipv4_pool, ipv6_pool,
           revision, created_at)
       SELECT '0x' || lpad(to_hex(i), 64, '0'), '0x' || lpad(to_hex(i), 40, '0'),
              ARRAY['wireguard'], '198.51.100.1:51820', 'DE', '10.0.0.0/16', 'fd00::/64', 0,
              $2::timestamptz - interval '1 day'
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO chain_nodes (node_id, operator, agent, stake, status, active, updated_block)
       SELECT '0x' || lpad(to_hex(i), 64, '0'), '0x' || lpad(to_hex(i), 40, '0'),
              '0x' || lpad(to_hex(i + 7000000), 40, '0'), 100e18, 'Active', true, 1
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO probers (address, name)
       SELECT '0x' || lpad(to_hex(p + 160), 40, '0'), 'prober ' || p
       FROM generate_series(1, $1::int) AS p""",
    # PROBERS x ROUNDS samples per node.
    """INSERT INTO probe_samples (prober, node_id, round_at, attempts, rtt_us, error, signature)
       SELECT '0x' || lpad(to_hex(p + 160), 40, '0'), '0x' || lpad(to_hex(i), 64, '0'),
              $2::timestamptz + r * interval '5 minutes', 3,
              CASE WHEN (i + p + r) % 17 = 0 THEN ARRAY[]::int[]
                   ELSE ARRAY[20000 + (i * 37) % 50000] END,
              CASE WHEN (i + p + r) % 17 = 0 THEN 'timeout' END, '0x' || repeat('00', 65)
       FROM generate_series(1, $1::int) AS i, generate_series(1, 3) AS p,
            generate_series(0, 11) AS r""",
    """INSERT INTO subscribers (address, expires_at)
       SELECT '0x' || lpad(to_hex(i + 20000000), 40, '0'), $2::timestamptz + interval '30 days'
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key, ipv4, ipv6,
           created_at)
       SELECT gen_random_uuid(), '0x' || lpad(to_hex(i), 64, '0'),
              '0x' || lpad(to_hex(i + 20000000), 40, '0'), 'wireguard',
              rpad('k' || i, 43, 'A') || '=', '10.0.0.2', 'fd00::2',
              $2::timestamptz - interval '1 day'
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO peer_metrics (node_id, public_key, reported_at, last_handshake_at, rx_bytes,
           tx_bytes)
       SELECT '0x' || lpad(to_hex(i), 64, '0'), rpad('k' || i, 43, 'A') || '=',
              $2::timestamptz + m * interval '1 second',
              $2::timestamptz + (m - 30) * interval '1 second',
              (m + 600) * (i % 97 + 1) * 1000, (m + 600) * (i % 89) * 1000
       FROM generate_series(1, $1::int) AS i, unnest(ARRAY[-600, 1200, 3000]) AS m""",
]


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
        for statement in SEED:
            count = PROBERS if "INTO probers" in statement else nodes
            await connection.execute(statement, count, *([START] if "$2" in statement else []))
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    seed = time.perf_counter() - started

    # The reads of 100,000 nodes outlast the default 5 s statement timeout (see bench/report.md).
    engine = make_engine(database_url, DatabaseTimeouts(statement_seconds=600))
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
