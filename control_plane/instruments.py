"""The control plane's process-local Prometheus instruments, in one object made at start-up and
passed down (Services, the chain reader): no module-global metrics. Each `Metrics` owns its
registry, so every app a test builds counts on its own.

Domain state (payments, nodes, epochs, ...) is not here: it is read from the database at scrape
time (control_plane/state_metrics), so every replica and worker reports the same truth. What is
here happens in this process: chain RPC calls, job runs, indexer reorgs, parked long-polls, the
database pool."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.pool import Pool

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
# Chain calls and jobs: from a cached eth_call (ms) to a slow indexer run (minutes).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """Set by `nodus-control-plane serve` with several workers: every worker's instruments
    then live in files there and any worker's /metrics reports the sum over all of them."""
    return os.environ.get(MULTIPROCESS_DIR) or None


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    rpc_calls: Counter = field(init=False)
    rpc_seconds: Histogram = field(init=False)
    rpc_breaker_state: Gauge = field(init=False)
    job_runs: Counter = field(init=False)
    job_seconds: Histogram = field(init=False)
    indexer_reorgs: Counter = field(init=False)
    longpolls_parked: Gauge = field(init=False)
    longpolls_capacity: Gauge = field(init=False)
    db_pool_connections: Gauge = field(init=False)

    def __post_init__(self) -> None:
        registry = self.registry
        made = {
            "rpc_calls": Counter(
                "nodus_rpc_calls",
                "Chain RPC calls by method (the contract function where known) and outcome "
                "(ok, reverted, rejected, unavailable, breaker_open)",
                ["method", "outcome"],
                registry=registry,
            ),
            "rpc_seconds": Histogram(
                "nodus_rpc_call_seconds",
                "Chain RPC call latency, retries included",
                ["method"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            "rpc_breaker_state": Gauge(
                "nodus_rpc_breaker_state",
                "The chain RPC circuit breaker: 0 closed, 1 half-open, 2 open (the worst of "
                "this instance's workers)",
                multiprocess_mode="livemax",
                registry=registry,
            ),
            "job_runs": Counter(
                "nodus_job_runs",
                "Background job ticks by job and outcome (ran, claimed_elsewhere, "
                "locked_elsewhere, failed, cancelled)",
                ["job", "outcome"],
                registry=registry,
            ),
            "job_seconds": Histogram(
                "nodus_job_run_seconds",
                "Background job tick duration (claim, lock and run)",
                ["job"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            "indexer_reorgs": Counter(
                "nodus_indexer_reorgs",
                "Reorg rewinds the indexer performed in this process",
                registry=registry,
            ),
            "longpolls_parked": Gauge(
                "nodus_longpolls_parked",
                "Agent long-polls parked in this instance now",
                multiprocess_mode="livesum",
                registry=registry,
            ),
            "longpolls_capacity": Gauge(
                "nodus_longpolls_capacity",
                "The cap on long-polls parked in this instance (each worker's cap, summed)",
                multiprocess_mode="livesum",
                registry=registry,
            ),
            "db_pool_connections": Gauge(
                "nodus_db_pool_connections",
                "This instance's database pool connections by state (in_use, idle)",
                ["state"],
                multiprocess_mode="livesum",
                registry=registry,
            ),
        }
        for name, instrument in made.items():
            object.__setattr__(self, name, instrument)
        # Present from the first scrape, before any job ran or any reorg happened.
        self.indexer_reorgs.inc(0)

    def watch_pool(self, pool: Pool) -> None:
        """Keeps `nodus_db_pool_connections` current on every checkout and checkin (with
        several workers, each worker's figures must be current without a scrape of its own).
        The checkin event fires just before the connection is back in the pool."""
        in_use, idle = (self.db_pool_connections.labels(s) for s in ("in_use", "idle"))
        counts: Any = pool  # QueuePool and its async variant count; other pools do not

        def checked_out(*_: object) -> None:
            in_use.set(counts.checkedout())
            idle.set(counts.checkedin())

        def checked_in(*_: object) -> None:
            in_use.set(max(0, counts.checkedout() - 1))
            idle.set(counts.checkedin() + 1)

        if hasattr(counts, "checkedout"):
            event.listen(pool, "checkout", checked_out)
            event.listen(pool, "checkin", checked_in)
            checked_out()

    def render(self, *extra: Collector) -> bytes:
        """The exposition text: this registry (or, with several workers, every worker's
        files) and `extra` collectors."""
        registry = CollectorRegistry(auto_describe=False)
        directory = multiprocess_dir()
        if directory is not None:
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Everything(self.registry))
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry)

    @staticmethod
    def process_exited() -> None:
        """Drops this worker's live gauges from the shared files (at shutdown)."""
        if multiprocess_dir() is not None:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Everything(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()
