"""A scheduler tick is a span `job <name>` carrying the run's outcome (control_plane/jobs.py)."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import make_engine, make_sessionmaker
from control_plane.jobs import Services, start_scheduler
from control_plane.settings import Settings
from control_plane.tracing import trace_engine, tracer_of
from tests.support.devchain import Anvil

INTERVAL = 0.5


async def test_each_job_run_is_a_span_with_its_outcome(settings: Settings, anvil: Anvil) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))

    async def works(_: Services, session: AsyncSession) -> None:
        await session.execute(text("SELECT 1"))

    async def breaks(_: Services, session: AsyncSession) -> None:
        raise RuntimeError("job broke")

    engine = make_engine(settings.database_url)
    trace_engine(engine, provider)
    services = Services(
        settings,
        make_sessionmaker(engine),
        chain=None,  # type: ignore[arg-type]
        tracer=tracer_of(provider),
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

    spans = exported.get_finished_spans()
    outcomes = {
        (span.attributes["nodus.job"], span.attributes["nodus.job.outcome"])
        for span in spans
        if span.attributes and "nodus.job" in span.attributes
    }
    assert ("probe_round", "ran") in outcomes
    assert ("expiry", "failed") in outcomes
    (run,) = [s for s in spans if s.name == "job probe_round"][:1]
    children = [s for s in spans if s.parent and s.parent.span_id == run.context.span_id]
    assert any(s.attributes and "db.statement" in s.attributes for s in children)
