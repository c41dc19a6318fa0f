"""Background jobs. Each job is a plain async function taking the app's `Services`, which tests
call directly. The scheduler runs each once per interval across replicas: every replica ticks,
and a tick first claims the run in the shared schedule (`job_runs`: `UPDATE ... WHERE
next_run_at <= now() RETURNING`, its own short transaction), so only one replica per interval
gets it; the run itself holds `pg_try_advisory_xact_lock`, so a run longer than its interval
never overlaps the next one.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from opentelemetry.trace import NoOpTracer, Tracer
from sqlalchemy import BigInteger, String, func, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.chain.caches import ChainReadCache, KeystoreCache
from control_plane.chain.client import ChainReader
from control_plane.chain.clock import ChainClock
from control_plane.db import Base, unit_of_work
from control_plane.instruments import Metrics
from control_plane.settings import Settings
from control_plane.tunnel.addresses import PoolsCache

log = logging.getLogger("nodus.jobs")


@dataclass(frozen=True, slots=True)
class Services:
    """The runtime context: what jobs, services and API dependencies need, created once by the
    app factory's lifespan (or a test) and passed down. It owns the process's caches."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    chain: ChainReader
    chain_reads: ChainReadCache = field(default_factory=ChainReadCache)
    keystores: KeystoreCache = field(default_factory=KeystoreCache)
    clock: ChainClock = field(default_factory=ChainClock)
    pools: PoolsCache = field(default_factory=PoolsCache)
    # control_plane/tracing.py; a no-op tracer while tracing is off.
    tracer: Tracer = field(default_factory=NoOpTracer)
    # control_plane/instruments.py: this process's Prometheus instruments.
    metrics: Metrics = field(default_factory=Metrics)


Job = Callable[[Services, AsyncSession], Awaitable[None]]


class JobRun(Base):
    """A job's schedule across the cluster: the next run may start at `next_run_at`."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime]
    last_started_at: Mapped[datetime | None]
    runs: Mapped[int] = mapped_column(BigInteger, server_default="0")


def claim_slack(interval: float) -> float:
    """How early a claimed run's successor may start: replicas tick on their own clocks, so a
    tick landing a hair before `next_run_at` must not skip a whole interval."""
    return min(0.5, interval / 10)


async def claim_run(services: Services, name: str, interval: float) -> bool:
    """Claims this interval's run of `name` for this replica (its own committed transaction);
    False if another replica already has it."""
    async with unit_of_work(services.sessions) as session:
        await session.execute(
            insert(JobRun)
            .values(name=name, next_run_at=func.now())
            .on_conflict_do_nothing(index_elements=[JobRun.name])
        )
        claimed = await session.scalar(
            update(JobRun)
            .where(JobRun.name == name, JobRun.next_run_at <= func.now())
            .values(
                next_run_at=func.now() + timedelta(seconds=interval - claim_slack(interval)),
                last_started_at=func.now(),
                runs=JobRun.runs + 1,
            )
            .returning(JobRun.name)
        )
    return claimed is not None


def lock_key(name: str) -> int:
    """A stable 32-bit advisory-lock key per job name."""
    return zlib.crc32(f"nodus.job.{name}".encode())


async def run_exclusive(services: Services, name: str, job: Job) -> bool:
    """Runs `job` in one transaction if no other replica is running it; True if it ran."""
    async with unit_of_work(services.sessions) as session:
        got = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock_key(name)}
        )
        if not got:
            return False
        await job(services, session)
        return True


def start_scheduler(services: Services, jobs: dict[str, tuple[float, Job]]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler()

    def make_runner(name: str, interval: float, job: Job) -> Callable[[], Awaitable[None]]:
        async def runner() -> None:
            with services.tracer.start_as_current_span(f"job {name}") as span:
                span.set_attribute("nodus.job", name)
                outcome = "cancelled"  # unless set below: the scheduler stopped mid-run
                started = time.perf_counter()
                try:
                    if await claim_run(services, name, interval):
                        ran = await run_exclusive(services, name, job)
                        outcome = "ran" if ran else "locked_elsewhere"
                    else:
                        outcome = "claimed_elsewhere"
                except Exception:
                    outcome = "failed"
                    log.exception("job failed", extra={"job": name})
                finally:
                    span.set_attribute("nodus.job.outcome", outcome)
                    services.metrics.job_runs.labels(name, outcome).inc()
                    services.metrics.job_seconds.labels(name).observe(time.perf_counter() - started)

        return runner

    for name, (interval, job) in jobs.items():
        scheduler.add_job(
            make_runner(name, interval, job),
            "interval",
            seconds=interval,
            id=name,
            max_instances=1,
            coalesce=True,
        )
    scheduler.start()
    return scheduler
