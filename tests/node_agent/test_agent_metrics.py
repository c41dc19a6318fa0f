"""The agent's Prometheus endpoint and traces, against the fake control plane (real HTTP) with
fake backends: exactly the metrics docs/metrics.md lists, what an operator reads off them as the
agent applies, fails, refuses a revision and loses the control plane, and the spans of a poll and
its apply joined to the control plane's by `traceparent`."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from node_agent import __version__
from node_agent.agent import Agent
from node_agent.backends import PeerStats
from node_agent.backends.commands import CommandError
from node_agent.client import ControlPlaneClient
from node_agent.config import AgentConfig
from node_agent.httpd import ListenFailed
from node_agent.metrics import FAILURE_REASONS, AgentMetrics, start_metrics_server
from node_agent.peers import Peer
from node_agent.state import StateStore
from node_agent.tracing import build_tracer_provider, tracing_requested
from tests.node_agent.conftest import FakeBackend, running_agent, until
from tests.node_agent.fake_control_plane import PEERS, FakeControlPlane, free_port, wg_peer
from tests.support.scrape import parse, scrape, value

Config = Callable[..., AgentConfig]
DOCS = Path(__file__).parents[2] / "docs" / "metrics.md"


def documented_agent_metrics() -> set[tuple[str, str, frozenset[str]]]:
    """(name, type, labels) of each row of docs/metrics.md's "Node agent" table."""
    section = DOCS.read_text().split("## Node agent", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        if line.startswith("| nodus_agent_"):
            name, kind, labels = (cell.strip() for cell in line.strip("|").split("|")[:3])
            rows.add((name, kind, frozenset(label.strip() for label in labels.split(",") if label)))
    return rows


def test_the_registry_holds_exactly_the_documented_metrics() -> None:
    metrics = AgentMetrics("0x" + "ab" * 32, "9.9.9")
    families = list(text_string_to_metric_families(metrics.render().decode()))
    served = {
        (
            family.name + ("_total" if family.type == "counter" else ""),
            family.type,
            frozenset(label for s in family.samples for label in s.labels if label != "le"),
        )
        for family in families
    }
    assert served == documented_agent_metrics()
    samples = parse(metrics.render().decode())
    assert value(samples, "nodus_agent_info", node="0x" + "ab" * 32, version="9.9.9") == 1
    # Every reason is there at 0 before anything failed (a rate() sees the first failure).
    for reason in FAILURE_REASONS:
        assert value(samples, "nodus_agent_apply_failures_total", reason=reason) == 0
    assert not any(name.endswith("_created") for name, _ in samples)


async def test_the_endpoint_serves_get_metrics_and_nothing_else() -> None:
    metrics = AgentMetrics("0x" + "cd" * 32, __version__)
    port = free_port()
    server = await start_metrics_server("127.0.0.1", port, metrics)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            response = await http.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=")
            assert "nodus_agent_control_plane_up 0.0" in response.text
            head = await http.head("/metrics")
            assert head.status_code == 200
            assert head.content == b""
            assert (await http.get("/health")).status_code == 404
            assert (await http.post("/metrics")).status_code == 405
    finally:
        server.close()
        await server.wait_closed()


async def test_a_taken_port_stops_the_agent_with_the_address(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(fake.url, METRICS_LISTEN=f"127.0.0.1:{port}")
        async with ControlPlaneClient(config.control_plane, config.node_id, account) as client:
            store = StateStore(config.state_dir)
            agent = Agent(config, client, {"wireguard": FakeBackend()}, store)
            message = f"metrics endpoint cannot listen on 127.0.0.1:{port}: Address already in use"
            with pytest.raises(ListenFailed, match=re.escape(message)):
                await agent.run()
    assert (StateStore(config.state_dir).load_status() or {})["running"] is False


class ScriptedBackend(FakeBackend):
    """Fails with `error` while it is set; reports `peer_stats` to scans."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        if self.error is not None:
            raise self.error
        await super().apply(peers)


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def config(make_config: Config, fake: FakeControlPlane, metrics_port: int) -> AgentConfig:
    return make_config(
        fake.url,
        METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        REPORTS_HEARTBEAT_SECONDS="0.2",  # the scans that feed handshakes and bytes
        EXPIRY_CHECK_SECONDS="0.3",  # the reconciles that retry a failed apply
    )


async def test_an_operator_reads_the_applied_set_handshakes_and_bytes(
    fake: FakeControlPlane, config: AgentConfig, account: LocalAccount, metrics_port: int
) -> None:
    backend = ScriptedBackend()
    shaken, silent = wg_peer(2), wg_peer(3)
    fake.set_peers([shaken, silent])
    started = time.time()
    backend.peer_stats = [
        PeerStats(str(shaken["public_key"]), started - 100, rx_bytes=1_000, tx_bytes=5_000),
        PeerStats(str(silent["public_key"]), None, rx_bytes=0, tx_bytes=148),
    ]
    async with running_agent(config, account, backend) as agent:
        await until(lambda: agent.poll_since == 1 and agent.recently_shaken is not None)
        samples = await scrape(metrics_port)

    assert value(samples, "nodus_agent_info", node=config.node_id, version=__version__) == 1
    assert value(samples, "nodus_agent_peers_desired", protocol="wireguard") == 2
    assert value(samples, "nodus_agent_peers_applied", protocol="wireguard") == 2
    assert value(samples, "nodus_agent_peers_desired", protocol="openvpn") == 0
    assert value(samples, "nodus_agent_revision_desired") == 1
    assert value(samples, "nodus_agent_revision_applied") == 1
    assert value(samples, "nodus_agent_control_plane_up") == 1
    assert value(samples, "nodus_agent_control_plane_last_success_timestamp_seconds") >= started
    assert value(samples, "nodus_agent_apply_seconds_count", protocol="wireguard") >= 1
    assert value(samples, "nodus_agent_peer_bytes", direction="rx") == 1_000
    assert value(samples, "nodus_agent_peer_bytes", direction="tx") == 5_148
    # One observation per scan, of the peer that shook hands only (about 100 s old).
    scans = value(samples, "nodus_agent_handshake_age_seconds_count")
    assert scans >= 1
    assert 100 <= value(samples, "nodus_agent_handshake_age_seconds_sum") / scans < 120
    assert value(samples, "nodus_agent_handshake_age_seconds_bucket", le="60.0") == 0
    assert value(samples, "nodus_agent_handshake_age_seconds_bucket", le="120.0") == scans
    assert value(samples, "nodus_agent_apply_failures_total", reason="command_failed") == 0


async def test_failures_show_their_reason_and_the_revision_lag(
    fake: FakeControlPlane, config: AgentConfig, account: LocalAccount, metrics_port: int
) -> None:
    backend = ScriptedBackend()
    fake.set_peers([wg_peer(2)])
    async with running_agent(config, account, backend) as agent:
        await until(lambda: agent.applied_revision == 1)
        backend.error = CommandError("wg show nodus0 dump ...: Unable to access interface")
        fake.set_peers([wg_peer(2), wg_peer(3), wg_peer(4)])
        await until(lambda: agent.apply_error is not None)
        samples = await scrape(metrics_port)
        assert value(samples, "nodus_agent_apply_failures_total", reason="command_failed") >= 1
        assert value(samples, "nodus_agent_apply_failures_total", reason="internal") == 0
        assert value(samples, "nodus_agent_revision_desired") == 2
        assert value(samples, "nodus_agent_revision_applied") == 1
        assert value(samples, "nodus_agent_peers_desired", protocol="wireguard") == 3
        assert value(samples, "nodus_agent_peers_applied", protocol="wireguard") == 1
        # Failed attempts are timed too.
        failed = value(samples, "nodus_agent_apply_seconds_count", protocol="wireguard")
        assert failed >= 2

        backend.error = None  # the next reconcile applies revision 2
        await until(lambda: agent.applied_revision == 2)
        outside = wg_peer(5)
        outside["allowed_ips"] = ["192.0.2.1/32"]  # outside the node's pool: refused whole
        fake.set_peers([wg_peer(2), outside])
        await until(lambda: agent.rejected is not None)
        samples = await scrape(metrics_port)
        assert value(samples, "nodus_agent_apply_failures_total", reason="revision_refused") == 1
        assert value(samples, "nodus_agent_revision_desired") == 3
        assert value(samples, "nodus_agent_revision_applied") == 2
        assert value(samples, "nodus_agent_peers_applied", protocol="wireguard") == 3


async def test_the_control_plane_going_away_shows_as_down(
    fake: FakeControlPlane, config: AgentConfig, account: LocalAccount, metrics_port: int
) -> None:
    fake.set_peers([wg_peer(2)])
    async with running_agent(config, account, ScriptedBackend()) as agent:
        await until(lambda: agent.applied_revision == 1)
        before = await scrape(metrics_port)
        assert value(before, "nodus_agent_control_plane_up") == 1
        await fake.stop()
        stopped = time.time()
        await until(lambda: agent.fail_static, 10)
        after = await scrape(metrics_port)
        assert value(after, "nodus_agent_control_plane_up") == 0
        last = "nodus_agent_control_plane_last_success_timestamp_seconds"
        assert value(after, last) <= stopped  # the last answer came before the outage
        assert value(after, "nodus_agent_revision_applied") == 1  # still serving (fail-static)
        await fake.start()
        await until(lambda: not agent.fail_static, 10)
        assert value(await scrape(metrics_port), "nodus_agent_control_plane_up") == 1


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_a_poll_and_its_apply_are_one_trace_the_control_plane_joins(
    fake: FakeControlPlane, config: AgentConfig, account: LocalAccount
) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    fake.set_peers([wg_peer(2), wg_peer(3)])

    def changed_poll() -> ReadableSpan | None:
        return next(
            (
                span
                for span in exported.get_finished_spans()
                if span.name == "agent.poll" and attributes(span).get("nodus.outcome") == "changed"
            ),
            None,
        )

    async with running_agent(config, account, FakeBackend(), provider.get_tracer("test")):
        await until(lambda: changed_poll() is not None)  # it ends after its apply
    spans = exported.get_finished_spans()
    poll = changed_poll()
    assert poll is not None
    apply = next(s for s in spans if s.name == "agent.apply")
    request = next(s for s in spans if s.name == f"GET {PEERS}" and s.parent == poll.context)
    assert apply.parent is not None
    assert apply.parent.span_id == poll.context.span_id
    assert (attributes(apply)["nodus.revision"], attributes(apply)["nodus.peers"]) == (1, 2)
    assert attributes(poll)["nodus.revision"] == 1
    # The control plane got the request span's traceparent: its own spans join this trace.
    sent = {
        header
        for (_, path), header in zip(fake.requests, fake.traceparents, strict=True)
        if path == PEERS
    }
    trace_id, span_id = f"{poll.context.trace_id:032x}", f"{request.context.span_id:016x}"
    assert any(header and header.startswith(f"00-{trace_id}-{span_id}-") for header in sent)


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_traces_are_off_unless_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert tracing_requested(environ) is on
    provider = build_tracer_provider(environ, "0x" + "ef" * 32)
    assert (provider is not None) is on
    if provider is not None:
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "nodus-agent"
        assert attributes["service.instance.id"] == "0x" + "ef" * 32
        provider.shutdown()


def test_the_reasons_are_documented() -> None:
    readme = (Path(__file__).parents[2] / "node_agent" / "README.md").read_text()
    section = readme.split("### Metrics and traces", 1)[1].split("\n### ", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", section)) >= set(FAILURE_REASONS)
