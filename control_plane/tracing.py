"""OpenTelemetry traces, off unless the standard OTEL_* variables ask for an exporter.

The provider is built once at start-up (`build_tracer_provider`) and handed to `create_app`,
which passes it down (the ASGI middleware, the engine's SQL spans, the jobs). Nothing here sets
OpenTelemetry's global provider: with tracing off, no middleware is installed and the jobs use
a no-op tracer, so the hot path pays nothing."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import NoOpTracer, Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

TRACER_NAME = "nodus.control_plane"


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when the environment asks for traces: OTEL_TRACES_EXPORTER names an exporter, or an
    OTLP endpoint is given (the exporter then defaults to otlp). OTEL_SDK_DISABLED=true wins."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def build_tracer_provider(environ: Mapping[str, str]) -> TracerProvider | None:
    """The provider the environment asks for, or None (tracing off: no exporter, no thread).
    The OTLP/HTTP exporter reads its endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*
    itself; OTEL_SERVICE_NAME names the service (default nodus-control-plane)."""
    if not tracing_requested(environ):
        return None
    service = environ.get("OTEL_SERVICE_NAME") or "nodus-control-plane"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporters = {
        name.strip().lower() for name in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")
    }
    if "console" in exporters:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if "otlp" in exporters:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracer_of(provider: TracerProvider | None) -> Tracer:
    """The control plane's tracer, a no-op one when tracing is off."""
    if provider is None:
        return NoOpTracer()
    return provider.get_tracer(TRACER_NAME)


def trace_engine(engine: AsyncEngine, provider: TracerProvider) -> None:
    """A span per SQL statement on `engine`, a child of the request or job span around it.
    EngineTracer directly rather than SQLAlchemyInstrumentor().instrument(): the instrumentor
    is a process-wide singleton that instruments once, and each app (tests build many) has its
    own engine and provider. The pool-usage metric goes to a no-op meter (metrics are
    Prometheus's job here)."""
    usage = (
        NoOpMeterProvider()
        .get_meter(TRACER_NAME)
        .create_up_down_counter("db.client.connections.usage")
    )
    EngineTracer(provider.get_tracer(TRACER_NAME), engine.sync_engine, usage)  # type: ignore[no-untyped-call]
