"""Scheduler ticks are counted by job and outcome (the names `job <name>` spans carry) and
timed."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import make_engine, make_sessionmaker
from control_plane.instruments import Metrics
from control_plane.jobs import Services, start_scheduler
from control_plane.settings import Settings
from tests.support.devchain import Anvil

INTERVAL = 0.5


async def test_job_runs_are_counted_by_outcome_and_timed(settings: Settings, anvil: Anvil) -> None:
    async def works(_: Services, session: AsyncSession) -> None:
        await session.execute(text("SELECT 1"))

    async def breaks(_: Services, session: AsyncSession) -> None:
        raise RuntimeError("job broke")

    engine = make_engine(settings.database_url)
    metrics = Metrics()
    services = Services(
        settings,
        make_sessionmaker(engine),
        chain=None,  # type: ignore[arg-type]
        metrics=metrics,
    )
    scheduler = start_scheduler(
        services, {"probe_round": (INTERVAL, works), "expiry": (INTERVAL, breaks)}
    )
    try:
        await asyncio.sleep(3 * INTERVAL)
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.2)
        await engine.dispose()

    def runs(job: str, outcome: str) -> float:
        value = metrics.registry.get_sample_value(
            "nodus_job_runs_total", {"job": job, "outcome": outcome}
        )
        return value or 0

    assert runs("probe_round", "ran") >= 1
    assert runs("expiry", "failed") >= 1
    assert runs("probe_round", "failed") == runs("expiry", "ran") == 0
    ticks = metrics.registry.get_sample_value("nodus_job_run_seconds_count", {"job": "expiry"})
    outcomes = ("ran", "claimed_elsewhere", "locked_elsewhere", "failed", "cancelled")
    assert ticks == sum(runs("expiry", outcome) for outcome in outcomes)
