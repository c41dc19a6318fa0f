"""The agent's Prometheus metrics (docs/metrics.md, "Node agent"), for the operator's scraper.

One `AgentMetrics` is made when the agent starts and handed to it; its metrics live in their own
CollectorRegistry (no process-global state: tests run many agents in one process). The agent
updates them as things happen (a poll, an apply, a heartbeat's scan of the peers), and
`GET /metrics` on `metrics.listen` renders the registry. That port is never the health port:
health is public and the prober's, the metrics are the operator's.

The endpoint is an asyncio server (httpd.py, like health) rather than prometheus_client's
start_http_server: that one runs a thread with no read timeout that outlives the agent's loop,
while this one is closed with the agent and cuts slow clients as health does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from node_agent.backends import PeerStats
from node_agent.backends.commands import CommandError, CommandTimeout
from node_agent.backends.openvpn.management import ManagementError
from node_agent.backends.openvpn.material import InvalidMaterial
from node_agent.client import ControlPlaneError
from node_agent.httpd import Request, Response, start_http_server

log = logging.getLogger("nodus.agent.metrics")

PROTOCOLS = ("wireguard", "openvpn")
# Why an apply failed: a small fixed set (a label value per exception type, never a message).
FAILURE_REASONS = {
    "command_failed": "a VPN tool (`wg`, `ip`, ...) exited non-zero or could not be started",
    "command_timeout": "a VPN tool did not answer in time",
    "openvpn_management": "OpenVPN's management socket refused or failed",
    "openvpn_material": "the OpenVPN material from the control plane failed its checks",
    "control_plane": "material needed for the apply could not be fetched",
    "io_error": "a file or socket operation failed",
    "revision_refused": "the control plane's set failed validation and was not applied",
    "internal": "anything else (a bug: the log has the traceback)",
}
# WireGuard re-handshakes every 2 minutes while traffic flows, so a live peer sits below 180 s;
# the upper buckets tell an idle peer (hours) from one gone for days.
HANDSHAKE_AGE_BUCKETS = (15, 30, 60, 120, 180, 300, 600, 1800, 3600, 21600, 86400, 604800)
# One peer takes milliseconds; 10,000 peers in one apply take seconds (node_agent/README.md).
APPLY_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def failure_reason(exc: BaseException) -> str:
    """The `reason` label of a failed apply (one of FAILURE_REASONS)."""
    if isinstance(exc, CommandTimeout):
        return "command_timeout"
    for kind, reason in (
        (CommandError, "command_failed"),
        (ManagementError, "openvpn_management"),
        (InvalidMaterial, "openvpn_material"),
        (ControlPlaneError, "control_plane"),
        (OSError, "io_error"),
    ):
        if isinstance(exc, kind):
            return reason
    return "internal"


class _WithoutCreated(Collector):
    """The registry minus the `*_created` samples prometheus_client adds to counters and
    histograms: nothing here reads them, and the endpoint serves docs/metrics.md's list."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():  # fresh objects at each collect
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class AgentMetrics:
    """Every metric the agent exposes, in one registry of its own."""

    def __init__(self, node_id: str, version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        info = Gauge("nodus_agent_info", "Always 1", ["node", "version"], registry=r)
        info.labels(node=node_id, version=version).set(1)
        self.peers_desired = Gauge(
            "nodus_agent_peers_desired",
            "Live (unexpired) peers in the desired set, by protocol",
            ["protocol"],
            registry=r,
        )
        self.peers_applied = Gauge(
            "nodus_agent_peers_applied",
            "Peers the protocol's backend last applied successfully",
            ["protocol"],
            registry=r,
        )
        self.handshake_age = Histogram(
            "nodus_agent_handshake_age_seconds",
            "Age of each WireGuard peer's latest handshake, observed at each heartbeat scan "
            "(peers that never shook hands are not observed)",
            buckets=HANDSHAKE_AGE_BUCKETS,
            registry=r,
        )
        self.peer_bytes = Gauge(
            "nodus_agent_peer_bytes",
            "Bytes received from (rx) and sent to (tx) the live peers, summed, at the last scan",
            ["direction"],
            registry=r,
        )
        self.apply_seconds = Histogram(
            "nodus_agent_apply_seconds",
            "Duration of one backend's apply (a new set, an expiry or a reconcile), failed or not",
            ["protocol"],
            buckets=APPLY_SECONDS_BUCKETS,
            registry=r,
        )
        self.apply_failures = Counter(
            "nodus_agent_apply_failures",
            "Applies that failed, by reason (see node_agent/README.md)",
            ["reason"],
            registry=r,
        )
        self.revision_desired = Gauge(
            "nodus_agent_revision_desired",
            "Latest peer-set revision received from the control plane",
            registry=r,
        )
        self.revision_applied = Gauge(
            "nodus_agent_revision_applied", "Peer-set revision applied on the node", registry=r
        )
        self.control_plane_up = Gauge(
            "nodus_agent_control_plane_up",
            "1 if the last poll reached the control plane, else 0",
            registry=r,
        )
        self.control_plane_last_success = Gauge(
            "nodus_agent_control_plane_last_success_timestamp_seconds",
            "Unix time of the last poll that reached the control plane",
            registry=r,
        )
        # Every label value exists from the start at 0: a dashboard shows 0 rather than "no
        # data", and the first failure is an increase a rate() can see.
        for protocol in PROTOCOLS:
            self.peers_desired.labels(protocol=protocol)
            self.peers_applied.labels(protocol=protocol)
            self.apply_seconds.labels(protocol=protocol)
        for direction in ("rx", "tx"):
            self.peer_bytes.labels(direction=direction)
        for reason in FAILURE_REASONS:
            self.apply_failures.labels(reason=reason)

    def apply_failed(self, reason: str) -> None:
        self.apply_failures.labels(reason=reason).inc()

    def observe_peers(self, stats: Iterable[tuple[str, PeerStats]], now: float) -> None:
        """One scan of the live peers: byte totals, and each WireGuard handshake's age."""
        rx = tx = 0
        for protocol, peer in stats:
            rx += peer.rx_bytes
            tx += peer.tx_bytes
            if protocol == "wireguard" and peer.last_handshake_at is not None:
                self.handshake_age.observe(max(0.0, now - peer.last_handshake_at))
        self.peer_bytes.labels(direction="rx").set(rx)
        self.peer_bytes.labels(direction="tx").set(tx)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(_WithoutCreated(self.registry))

    def answer(self, request: Request) -> Response:
        if not request.well_formed:
            return Response(400, "text/plain; charset=utf-8", b"bad request\n")
        if request.path != "/metrics":
            return Response(404, "text/plain; charset=utf-8", b"not found: GET /metrics\n")
        if request.method not in ("GET", "HEAD"):
            return Response(405, "text/plain; charset=utf-8", b"method not allowed\n")
        return Response(200, CONTENT_TYPE_LATEST, self.render())


async def start_metrics_server(host: str, port: int, metrics: AgentMetrics) -> asyncio.Server:
    server = await start_http_server(host, port, metrics.answer, "metrics")
    shown = f"[{host}]" if ":" in host else host or "*"
    log.info("metrics endpoint on http://%s:%d/metrics", shown, port)
    return server
