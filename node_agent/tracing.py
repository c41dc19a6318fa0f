"""The agent's OpenTelemetry traces, off unless the standard OTEL_* variables ask for them.

The provider is built once in runner.py and its tracer handed to the control-plane client (a
client span per request, its `traceparent` sent along, so the control plane's trace of the
request joins the agent's) and to the agent (a span per poll and per apply). Nothing here sets
OpenTelemetry's global provider. The same rules as the control plane's (control_plane/tracing.py),
written again here: node_agent never imports control_plane."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import NoOpTracer, Tracer

from node_agent import __version__

TRACER_NAME = "nodus.agent"
DEFAULT_SERVICE_NAME = "nodus-agent"


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when OTEL_TRACES_EXPORTER names an exporter (not `none`) or an OTLP endpoint is
    given (the exporter then defaults to otlp). OTEL_SDK_DISABLED=true wins over both."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def build_tracer_provider(environ: Mapping[str, str], node_id: str) -> TracerProvider | None:
    """The provider the environment asks for, or None (off: no exporter, no thread). The
    OTLP/HTTP exporter reads its endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*;
    OTEL_SERVICE_NAME names the service (default nodus-agent) and OTEL_RESOURCE_ATTRIBUTES
    adds to the resource, which carries the node id as service.instance.id."""
    if not tracing_requested(environ):
        return None
    resource = Resource.create(
        {
            "service.name": environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            "service.version": __version__,
            "service.instance.id": node_id,
        }
    )
    provider = TracerProvider(resource=resource)
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
    """The agent's tracer; a no-op one while tracing is off."""
    return NoOpTracer() if provider is None else provider.get_tracer(TRACER_NAME)
