"""Background jobs. Each job is a plain async function taking the app's `Services`, which tests
call directly; the scheduler runs each on an interval, once across replicas: a job runs inside a
transaction holding `pg_try_advisory_xact_lock`, and a replica that does not get it skips the run.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.chain.caches import ChainReadCache, KeystoreCache
from control_plane.chain.client import ChainReader
from control_plane.chain.clock import ChainClock
from control_plane.db import unit_of_work
from control_plane.settings import Settings

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


Job = Callable[[Services, AsyncSession], Awaitable[None]]


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

    def make_runner(name: str, job: Job) -> Callable[[], Awaitable[None]]:
        async def runner() -> None:
            try:
                await run_exclusive(services, name, job)
            except Exception:
                log.exception("job failed", extra={"job": name})

        return runner

    for name, (interval, job) in jobs.items():
        scheduler.add_job(
            make_runner(name, job),
            "interval",
            seconds=interval,
            id=name,
            max_instances=1,
            coalesce=True,
        )
    scheduler.start()
    return scheduler
