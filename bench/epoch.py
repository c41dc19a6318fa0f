"""P5: an epoch for 100,000 operators: the gather step's database reads (bench/epoch_db.py) and
the pure part (scoring, allocation, Merkle tree, every proof, the published data), with 10,000
as the same-run baseline."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.epoch_db import DatabaseTimes, time_gather
from bench.report import Section
from control_plane.rewards.formula.epoch import compute_epoch
from control_plane.rewards.formula.scoring import NodeMetrics, ProberView

NDS = 10**18
EPOCH_SECONDS = 3_600


def metrics_for(operators: int) -> list[NodeMetrics]:
    """One node per operator, three probers each, some traffic: every branch of scoring."""
    probers = ["0x" + f"{p:040x}" for p in (0xA1, 0xA2, 0xA3)]
    rows = []
    for i in range(operators):
        views = tuple(
            ProberView(prober, 12, 12 - (i + j) % 3, 20_000 + (i * 37) % 50_000, epoch_rounds=12)
            for j, prober in enumerate(probers)
        )
        rows.append(
            NodeMetrics(
                node_id="0x" + f"{i + 1:064x}",
                operator="0x" + f"{i + 1:040x}",
                active=True,
                epoch_seconds=EPOCH_SECONDS,
                probers=views,
                peers_with_traffic=i % 7,
                peers_with_handshake=i % 5 if i % 5 <= i % 7 else i % 7,
                served_bytes=(i % 97) * 10**8,
                previous_smoothed_ppm=(i * 13) % 1_000_000,
                agent="0x" + f"{i + 7_000_000:040x}",
                stake=100 * NDS,
            )
        )
    return rows


def time_epoch(operators: int) -> float:
    metrics = metrics_for(operators)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    compute_epoch(
        chain_id=31337,
        epoch=2,
        start=end - timedelta(seconds=EPOCH_SECONDS),
        end=end,
        requested_budget=10_000 * NDS,
        total_funded=10**9 * NDS,
        previous_cumulative={m.operator: 5 * NDS for m in metrics[::2]},
        metrics=metrics,
        probe_rounds=12,
    )
    return time.perf_counter() - started


TARGET_SECONDS = 3.0


def _database_rows(size: int, db: DatabaseTimes) -> list[tuple[str, ...]]:
    rows = [
        ("seed (not part of the epoch)", f"{db.seed:.1f} s"),
        ("nodes with chain state", f"{db.nodes:.2f} s"),
        (f"probe samples ({db.sample_count:,} rows)", f"{db.samples:.2f} s"),
        ("agents' peer reports with paying wallets", f"{db.reports:.2f} s"),
        ("previous smoothed scores", f"{db.previous:.2f} s"),
        ("prober views and traffic tally", f"{db.tally:.2f} s"),
        ("signature check of every sample (estimated)", f"{db.signatures:.1f} s"),
    ]
    return [(f"{size:,}", part, time) for part, time in rows]


def measure_p5(section: Section, quick: bool) -> None:
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    pure = {size: time_epoch(size) for size in sizes}
    database = {size: time_gather(size) for size in sizes}
    base = sizes[0]
    rows = []
    for size in sizes:
        db = database[size]
        total = db.reads + pure[size]
        rows.append(
            (
                f"{size:,}",
                f"{db.reads:.2f} s",
                f"{db.signatures:.1f} s",
                f"{pure[size]:.2f} s",
                f"{total:.2f} s ({total / TARGET_SECONDS:.1f}x the 3 s target)",
                f"{pure[size] / pure[base]:.1f}x",
            )
        )
    section.table(
        (
            "operators",
            "database reads",
            "+ signature checks",
            "pure part",
            "reads + pure",
            "pure vs the base run",
        ),
        rows,
    )
    section.table(
        ("operators", "gather step", "time"),
        [row for size in sizes for row in _database_rows(size, database[size])],
    )
    section.add(
        "The pure part: scores, budget cap, capped allocation, cumulative leaves, the Merkle "
        "tree with every proof, and the canonical published data with its keccak256. "
        "The database part: posting/gather.py's reads against a migrated PostgreSQL seeded with "
        "one node per operator, three probers' twelve rounds of each, and a paying "
        "subscriber's config and reports per node (bench/epoch_db.py). The per-sample "
        "signature check on read is timed on real signed samples and scaled to the count.",
        "",
    )
