"""Two replicas (two schedulers, two engines) on one database: each job runs once per interval
across them, not once per replica (the advisory lock alone only kept runs from overlapping)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import make_engine, make_sessionmaker
from control_plane.jobs import Job, Services, claim_slack, start_scheduler
from control_plane.settings import Settings
from tests.support.devchain import Anvil

INTERVAL = 1.0


async def test_two_schedulers_run_each_job_once_per_interval(
    settings: Settings, anvil: Anvil
) -> None:
    runs: list[tuple[str, datetime]] = []

    def job_of(replica: str) -> Job:
        async def job(_: Services, session: AsyncSession) -> None:
            started = await session.scalar(text("SELECT clock_timestamp()"))
            assert isinstance(started, datetime)
            runs.append((replica, started))

        return job

    engines = [make_engine(settings.database_url) for _ in range(2)]
    schedulers = [
        start_scheduler(
            Services(settings, make_sessionmaker(engine), chain=None),  # type: ignore[arg-type]
            {"probe_round": (INTERVAL, job_of(replica))},
        )
        for replica, engine in zip(("a", "b"), engines, strict=True)
    ]
    try:
        await asyncio.sleep(6 * INTERVAL)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=False)
        await asyncio.sleep(0.2)
        async with make_sessionmaker(engines[0])() as session:
            counted = await session.scalar(
                text("SELECT runs FROM job_runs WHERE name = 'probe_round'")
            )
        for engine in engines:
            await engine.dispose()
    starts = sorted(started for _, started in runs)
    assert len(starts) >= 3
    # Every recorded run was claimed once; a run claimed just as the schedulers stop may be cut
    # off before its body records its start.
    assert counted in (len(starts), len(starts) + 1), (counted, len(starts))
    # Once per interval across both: no two runs closer than the interval (less the slack a
    # tick on another clock may take), where one run per replica per tick would be.
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= INTERVAL - claim_slack(INTERVAL) - 0.05, gaps
