"""Traces (control_plane/tracing.py): a config request is one trace of its route span and its SQL
spans; a log line inside a span carries the trace id; with tracing off nothing is exported."""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import os
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.logging_setup import JsonFormatter
from control_plane.settings import Settings
from control_plane.tracing import build_tracer_provider
from node_agent.client import ControlPlaneClient
from node_agent.config import ControlPlaneOptions
from tests.control_plane.configs.test_issue import issue, wireguard
from tests.support.builders import agent_of
from tests.support.devchain import Anvil


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def app(
    settings: Settings, anvil: Anvil, deployment: Deployment, exported: InMemorySpanExporter
) -> AsyncIterator[FastAPI]:
    """The real application with tracing on, its spans kept in memory."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(settings, chain=chain, tracer_provider=provider)
    async with LifespanManager(application):
        yield application
    await chain.aclose()


async def test_a_config_request_is_one_trace_of_its_route_and_sql_spans(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    exported: InMemorySpanExporter,
) -> None:
    exported.clear()

    response = await issue(client, settings, subscriber, wireguard(node))

    assert response.status_code == 201, response.text
    spans = exported.get_finished_spans()
    assert len({span.context.trace_id for span in spans}) == 1
    (server,) = [span for span in spans if span.kind is SpanKind.SERVER]
    assert server.parent is None
    queries = [span for span in spans if span.attributes and "db.statement" in span.attributes]
    assert queries, [span.name for span in spans]


def test_a_log_line_inside_a_span_carries_its_trace_id() -> None:
    provider = TracerProvider()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("nodus.test.traces")
    log.addHandler(handler)
    try:
        with provider.get_tracer("test").start_as_current_span("work") as span:
            log.warning("inside")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = stream.getvalue().splitlines()
    assert f'"trace_id": "{span.get_span_context().trace_id:032x}"' in inside
    assert "trace_id" not in outside


def test_tracing_is_off_without_otel_variables() -> None:
    threads = threading.active_count()
    unset = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert build_tracer_provider(unset) is None
    assert build_tracer_provider({**unset, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert threading.active_count() == threads


def test_an_otlp_endpoint_turns_tracing_on_with_an_exporter_thread() -> None:
    threads = threading.active_count()
    provider = build_tracer_provider({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert provider is not None
    assert threading.active_count() > threads
    provider.shutdown()


class SeparateContextTransport(httpx.ASGITransport):
    """The app served in a fresh context, as in another process: the agent's span is not the
    current span there, so only the request's `traceparent` header can link the two."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        handled = super().handle_async_request(request)
        return await asyncio.create_task(handled, context=contextvars.Context())


async def test_an_agent_call_carries_a_traceparent_the_control_plane_continues(
    app: FastAPI, node: str, exported: InMemorySpanExporter
) -> None:
    agent_exported = InMemorySpanExporter()
    agent_provider = TracerProvider()
    agent_provider.add_span_processor(SimpleSpanProcessor(agent_exported))
    options = ControlPlaneOptions(
        url="http://testserver",
        poll_wait_seconds=0,
        request_timeout_seconds=10,
        retry_attempts=1,
        backoff_base_seconds=0.1,
        backoff_cap_seconds=0.1,
        breaker_failures=5,
        breaker_reset_seconds=1,
    )
    exported.clear()
    async with ControlPlaneClient(
        options,
        node,
        agent_of(node),
        transport=SeparateContextTransport(app=app),
        tracer=agent_provider.get_tracer("agent"),
    ) as agent:
        await agent.pools()

    agent_spans = agent_exported.get_finished_spans()
    assert agent_spans
    assert all(span.kind is SpanKind.CLIENT for span in agent_spans)
    servers = [span for span in exported.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert servers, [(s.name, s.kind) for s in exported.get_finished_spans()]
    for server in servers:
        assert server.parent is not None
        assert server.parent.span_id in {span.context.span_id for span in agent_spans}
        assert server.context.trace_id in {span.context.trace_id for span in agent_spans}
