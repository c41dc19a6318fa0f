"""P5: an epoch's pure part (scoring, allocation, Merkle tree, every proof, the published data)
for 100,000 operators, with 10,000 (today's recorded figure: 0.66 s) as the same-run baseline."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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


def measure_p5(section: Section, quick: bool) -> None:
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    times = {size: time_epoch(size) for size in sizes}
    base = sizes[0]
    rows = [("today's figure (recorded)", "10,000", "0.66 s", "")]
    for size in sizes:
        per = times[size] / size * 1e6
        rows.append(
            (
                "compute_epoch (pure)",
                f"{size:,}",
                f"{times[size]:.2f} s",
                f"{per:.1f} us/operator ({times[size] / times[base]:.1f}x the {base:,} run)",
            )
        )
    section.table(("part", "operators", "time", "per operator"), rows)
    section.add(
        "The pure part: scores, budget cap, capped allocation, cumulative leaves, the Merkle "
        "tree with every proof, and the canonical published data with its keccak256. "
        "Target: at most 3 s for 100,000 with the database reads.",
        "",
        "The database reads (posting/gather.py for 100,000 nodes) are not measured yet: they need "
        "100,000 indexed nodes with samples and reports seeded into PostgreSQL, which this "
        "harness does not build yet.",
        "",
    )
