"""The agent: keeps the node's VPN servers equal to the control plane's desired peer set.

Four loops run side by side:
- sync: long-polls /v1/agent/peers with the last applied revision; a new set is validated
  (validate.py: refused whole if any peer is bad), applied through the backends (each touches
  only the difference), then persisted (state.json). While the control plane is unreachable or
  refuses us, the agent keeps serving the last known set: fail-static, said in logs and status;
- expiry: a timer to the next peer expiry (and a check every `expiry.check_seconds`, which also
  reconciles the interface with the applied set) drops lapsed peers on time, with or without the
  control plane;
- heartbeat (15 s): version, applied revision, active peers, byte totals;
- metrics (60 s): per-peer handshake time and byte counters, only for peers that changed.

Besides, the operator's Prometheus metrics (metrics.py) follow each poll, apply and heartbeat
scan, and each poll and apply is a span (tracing.py; no-op unless OTEL_* turns traces on).

On start, the persisted set (minus what expired meanwhile) is applied at once, before the first
request to the control plane, so a restart never empties a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import NoOpTracer, Span, Status, StatusCode, Tracer

from node_agent import __version__
from node_agent.backends import PeerStats, VpnBackend
from node_agent.client import ControlPlaneClient, ControlPlaneError, Refused, Unavailable
from node_agent.config import AgentConfig
from node_agent.expiry import expired_peers, live_peers, next_expiry
from node_agent.health import HealthProver, start_health_server
from node_agent.metrics import PROTOCOLS, AgentMetrics, failure_reason, start_metrics_server
from node_agent.network import NodeNetwork
from node_agent.peer_reports import INT64_MAX, changed_peers
from node_agent.peers import DesiredSet, Peer, identity_of, protocol_of
from node_agent.pools import require_pools
from node_agent.resilience import Backoff
from node_agent.state import AppliedState, StateStore
from node_agent.status_document import status_document
from node_agent.validate import InvalidPayload, parse_poll_answer
from node_agent.verdicts import Facts, Verdict, judge

log = logging.getLogger("nodus.agent")

# A peer counts as active (heartbeat) with a handshake this recent: WireGuard renews the
# session every 2 minutes while traffic flows, so 3 minutes without one means it went away.
ACTIVE_HANDSHAKE_SECONDS = 180
MAX_ERRORS_KEPT = 20
UNREACHABLE_REMINDER = timedelta(minutes=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApplyFailed(Exception):
    """At least one backend could not apply the set (the others did)."""


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        client: ControlPlaneClient,
        backends: Mapping[str, VpnBackend],
        store: StateStore,
        *,
        clock: Callable[[], datetime] = utc_now,
        network: NodeNetwork | None = None,
        metrics: AgentMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        require_pools(config)  # no peer can be checked without the node's pools (pools.py)
        self.config = config
        self.client = client
        self.backends = dict(backends)
        self.store = store
        self.clock = clock
        self.network = network
        # The operator's Prometheus metrics (served only with metrics.listen) and the spans.
        self.metrics = metrics or AgentMetrics(config.node_id, __version__)
        self.tracer = tracer or NoOpTracer()
        self.network_problems: dict[str, str] = {}  # reason code -> detail (network.py)
        self.recently_shaken: int | None = None  # peers with a recent handshake
        self._last_reason: str | None = None
        cp = config.control_plane
        self.backoff = Backoff(cp.backoff_base_seconds, cp.backoff_cap_seconds)

        self.desired: DesiredSet | None = None  # the last good set (control plane or disk)
        self.applied: tuple[Peer, ...] = ()  # what the backends were last told to serve
        self.applied_revision: int | None = None
        self.applied_at: datetime | None = None  # when the revision was first applied
        self.apply_error: str | None = None
        self.poll_since: int | None = None
        self.rejected: tuple[int | None, str] | None = None
        self.last_sync_at: datetime | None = None
        self.synced = False  # the last exchange with the control plane gave us its set
        self.unreachable_since: datetime | None = None
        self.unreachable_reason: str | None = None
        self.last_heartbeat_at: datetime | None = None
        self.last_metrics_at: datetime | None = None
        self.errors: deque[dict[str, str]] = deque(maxlen=MAX_ERRORS_KEPT)
        self.started_at = clock()
        self._apply_lock = asyncio.Lock()
        self._expiry_wakeup = asyncio.Event()
        self._last_reconcile = asyncio.get_running_loop().time()
        self._reported: dict[tuple[str, str], tuple[float | None, int, int]] = {}
        self._last_reminder: datetime | None = None
        self._unserved_protocols: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Restores the persisted set, then runs every loop until cancelled. Peers are never
        removed on shutdown: the node keeps serving while the agent is away."""
        await asyncio.to_thread(self.store.ensure_directory)
        await self.check_network()
        await self.restore()
        servers: list[asyncio.Server] = []
        try:
            if self.config.health_listen is not None:
                host, port = self.config.health_listen
                # Health answers carry proof of service, signed with the agent key.
                prover = HealthProver(self.config.node_id, self.client.account)
                servers.append(await start_health_server(host, port, self.health, prover))
            if self.config.metrics_listen is not None:
                host, port = self.config.metrics_listen
                servers.append(await start_metrics_server(host, port, self.metrics))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._sync_loop(), name="sync")
                tasks.create_task(self._expiry_loop(), name="expiry")
                tasks.create_task(self._heartbeat_loop(), name="heartbeat")
                tasks.create_task(self._metrics_loop(), name="metrics")
        finally:
            for server in servers:
                server.close()
            self.write_status(running=False)

    async def restore(self) -> None:
        """Applies the persisted set (fail-static) before any request to the control plane."""
        state = await asyncio.to_thread(self.store.load, self.config.pools)
        if state is None:
            log.info("no persisted peer set; waiting for the control plane's")
            self.write_status()
            return
        self.desired = DesiredSet(state.revision, state.peers)
        self.metrics.revision_desired.set(state.revision)
        self.applied_at = state.applied_at
        self.poll_since = state.revision
        expired = len(expired_peers(state.peers, self.clock()))
        log.warning(
            "fail-static: applying the persisted set (revision %d, %d peers, %d expired since) "
            "before reaching the control plane",
            state.revision,
            len(state.peers) - expired,
            expired,
        )
        with contextlib.suppress(ApplyFailed):  # recorded; the loops try again
            await self._apply(persist=False)

    # --- applying ------------------------------------------------------------------------------

    async def _apply(self, *, persist: bool) -> None:
        """Applies the live part of `self.desired` to every backend; with `persist`, records
        the set in state.json once applied."""
        async with self._apply_lock:
            desired = self.desired
            if desired is None:
                return  # never empty a node on no information
            with self.tracer.start_as_current_span("agent.apply") as span:
                span.set_attribute("nodus.revision", desired.revision)
                await self._apply_locked(desired, persist=persist, span=span)

    async def _apply_locked(self, desired: DesiredSet, *, persist: bool, span: Span) -> None:
        now = self.clock()
        live = live_peers(desired.peers, now)
        span.set_attribute("nodus.peers", len(live))
        for protocol in PROTOCOLS:
            count = sum(1 for peer in live if protocol_of(peer) == protocol)
            self.metrics.peers_desired.labels(protocol=protocol).set(count)
        failures: list[str] = []
        for protocol, backend in self.backends.items():
            mine = tuple(peer for peer in live if protocol_of(peer) == protocol)
            started = time.perf_counter()
            try:
                await backend.apply(mine)
            except Exception as exc:  # a backend's failure must not stop the others
                failures.append(f"{protocol}: {exc}")
                self.metrics.apply_failed(failure_reason(exc))
                span.record_exception(exc)
            else:
                self.metrics.peers_applied.labels(protocol=protocol).set(len(mine))
            elapsed = time.perf_counter() - started
            self.metrics.apply_seconds.labels(protocol=protocol).observe(elapsed)
        self._warn_unserved(live)
        if failures:
            self.apply_error = "; ".join(failures)
            span.set_status(Status(StatusCode.ERROR, self.apply_error))
            log.error("apply of revision %d failed: %s", desired.revision, self.apply_error)
            self._error(f"apply of revision {desired.revision} failed: {self.apply_error}")
            self.write_status()
            raise ApplyFailed(self.apply_error)
        self.apply_error = None
        self.applied = live
        first_time = self.applied_revision != desired.revision
        self.applied_revision = desired.revision
        self.metrics.revision_applied.set(desired.revision)
        if persist:
            self.applied_at = now
            await asyncio.to_thread(
                self.store.save, AppliedState(desired.revision, desired.peers, now)
            )
        elif first_time and self.applied_at is None:
            self.applied_at = now
        self._last_reconcile = asyncio.get_running_loop().time()
        self._expiry_wakeup.set()
        self.write_status()

    def _warn_unserved(self, live: tuple[Peer, ...]) -> None:
        for protocol in {protocol_of(peer) for peer in live} - set(self.backends):
            if protocol not in self._unserved_protocols:
                self._unserved_protocols.add(protocol)
                log.warning("the set has %s peers but no backend serves them", protocol)

    # --- sync loop -----------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        failures = 0
        while True:
            try:
                failures = await self._sync_once(failures)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the loop that keeps the node current
                log.exception("sync step failed")
                self._error(f"sync step failed: {exc}")
                failures += 1
            if failures:
                await asyncio.sleep(self._pause(failures))

    def _pause(self, failures: int) -> float:
        return max(0.05, self.backoff.delay(failures - 1), self.client.breaker.retry_after())

    async def _sync_once(self, failures: int) -> int:
        """One poll, a span around it and the apply it leads to; the number of consecutive
        failures after it (0: go again at once)."""
        with self.tracer.start_as_current_span("agent.poll") as span:
            span.set_attribute("nodus.since", -1 if self.poll_since is None else self.poll_since)
            after = await self._poll_and_apply(failures, span)
            if after > failures:
                why = self.unreachable_reason or self.apply_error or "failed"
                span.set_status(Status(StatusCode.ERROR, why))
            return after

    async def _poll_and_apply(self, failures: int, span: Span) -> int:
        wait = self.config.control_plane.poll_wait_seconds
        # A diff is asked only against the set we hold at exactly `poll_since` (not after a
        # refused answer or a failed apply moved one of them): anything else fetches it whole.
        base = self.desired
        if base is None or base.revision != self.poll_since or base.history is None:
            base = None
        try:
            body = await self.client.poll_peers(
                self.poll_since, wait, diff=True, history=None if base is None else base.history
            )
        except Unavailable as exc:
            self._lost(f"unreachable: {exc}")
            span.set_attribute("nodus.outcome", "unreachable")
            await self._enforce_expiry()
            return failures + 1
        except Refused as exc:
            self._lost(f"refused: {exc}")
            span.set_attribute("nodus.outcome", "refused")
            await self._enforce_expiry()
            return failures + 1
        try:
            answer = parse_poll_answer(body, self.config.pools, base)
        except InvalidPayload as exc:
            self._reached()
            if body.get("diff_since") is not None and self.desired is not None:
                # A diff that does not apply: judge the whole set instead, at once.
                log.warning("refused a diff (%s); asking for the whole set", exc)
                self.desired = replace(self.desired, history=None)
                return failures
            revision = body.get("revision")
            revision = revision if isinstance(revision, int) and revision >= 0 else None
            self.rejected = (revision, str(exc))
            self.metrics.apply_failed("revision_refused")
            if revision is not None:
                self.metrics.revision_desired.set(revision)
            span.set_attribute("nodus.outcome", "refused_revision")
            kept = self.applied_revision
            self._error(f"refused revision {revision} from the control plane: {exc}")
            log.error(
                "refused the control plane's revision %s (%s); keeping revision %s applied",
                revision,
                exc,
                kept,
            )
            self.write_status()
            if revision is None or revision == self.poll_since:
                return failures + 1  # nothing to wait past: back off
            self.poll_since = revision  # wait for the next revision, do not re-fetch this one
            return 0
        self._reached()
        self.metrics.revision_desired.set(answer.revision)
        span.set_attribute("nodus.revision", answer.revision)
        span.set_attribute("nodus.outcome", "changed" if answer.changed else "unchanged")
        if not answer.changed:
            await self._enforce_expiry()
            return 0
        assert answer.desired is not None
        if self.applied_revision is not None and answer.revision < self.applied_revision:
            log.warning(
                "the control plane went back from revision %d to %d (restored?); applying its set",
                self.applied_revision,
                answer.revision,
            )
        self.desired = answer.desired
        self.rejected = None
        previous = {identity_of(peer) for peer in self.applied}
        try:
            await self._apply(persist=True)
        except ApplyFailed:
            return failures + 1  # poll_since unchanged: the next poll hands the set back
        self.poll_since = answer.revision
        now_live = {identity_of(peer) for peer in self.applied}
        log.info(
            "applied revision %d: %d peers (+%d -%d)%s",
            answer.revision,
            len(now_live),
            len(now_live - previous),
            len(previous - now_live),
            "" if answer.diff_since is None else f", a diff since {answer.diff_since}",
        )
        return 0

    def _reached(self) -> None:
        now = self.clock()
        if not self.synced:
            if self.unreachable_since is not None:
                log.info(
                    "control plane answers again after %.0fs; fail-static ends, resyncing",
                    (now - self.unreachable_since).total_seconds(),
                )
            self.synced = True
            self.unreachable_since = None
            self.unreachable_reason = None
        self.last_sync_at = now
        self.metrics.control_plane_up.set(1)
        self.metrics.control_plane_last_success.set(now.timestamp())
        self.write_status()

    def _lost(self, reason: str) -> None:
        now = self.clock()
        first = self.synced or self.unreachable_since is None
        if first:
            self.unreachable_since = now
        self.synced = False
        self.unreachable_reason = reason
        self.metrics.control_plane_up.set(0)
        if first or (
            self._last_reminder is not None and now - self._last_reminder >= UNREACHABLE_REMINDER
        ):
            self._last_reminder = now
            log.warning(
                "control plane %s; fail-static: serving the last known set (revision %s, %d "
                "peers) and still removing peers as they expire",
                reason,
                self.applied_revision,
                len(self.applied),
            )
            self._error(f"control plane {reason}")
        self.write_status()

    # --- expiry loop ---------------------------------------------------------------------------

    async def _expiry_loop(self) -> None:
        loop = asyncio.get_running_loop()
        check = self.config.expiry_check_seconds
        while True:
            timeout = check - (loop.time() - self._last_reconcile)
            upcoming = next_expiry(self.applied, self.clock())
            if upcoming is not None:
                timeout = min(timeout, (upcoming - self.clock()).total_seconds() + 0.01)
            if timeout > 0:
                try:
                    async with asyncio.timeout(timeout):
                        await self._expiry_wakeup.wait()
                except TimeoutError:
                    pass
            self._expiry_wakeup.clear()
            due = loop.time() - self._last_reconcile >= check
            try:
                if not await self._enforce_expiry() and due:
                    # Reconcile: undo drift (a restarted wireguard-go, a hand-made change) and
                    # retry a failed apply. Diff-based, so a no-op costs one `wg show dump`.
                    self._last_reconcile = loop.time()
                    await self._apply(persist=False)
            except ApplyFailed:
                pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("expiry step failed")
                self._error(f"expiry step failed: {exc}")
            if self.apply_error is not None:
                self._last_reconcile = loop.time()  # retry at the next check, not at once

    async def _enforce_expiry(self) -> bool:
        """Re-applies without the peers whose expiry passed; True if there were any."""
        expired = expired_peers(self.applied, self.clock())
        if not expired:
            return False
        log.info(
            "removing %d expired peer(s)%s: %s",
            len(expired),
            "" if self.synced else " on our own (fail-static)",
            ", ".join(identity_of(peer) for peer in expired[:5]),
        )
        with contextlib.suppress(ApplyFailed):
            await self._apply(persist=False)
        return True

    # --- reports -------------------------------------------------------------------------------

    async def collect_stats(self) -> list[tuple[str, PeerStats]]:
        stats: list[tuple[str, PeerStats]] = []
        for protocol, backend in self.backends.items():
            try:
                stats += [(protocol, peer) for peer in await backend.stats()]
            except Exception as exc:
                self._error(f"{protocol} stats failed: {exc}")
        return stats

    async def check_network(self) -> None:
        """Re-checks what network.py set up (a hand-made change, a flushed ruleset)."""
        if self.network is None:
            return
        checks = {"interface_missing": self.network.interface_problem()}
        checks["forwarding_off"] = self.network.forwarding_problem()
        if self.config.network.nat:
            checks["nat_missing"] = self.network.nat_problem()
        problems: dict[str, str] = {}
        for reason, check in checks.items():
            detail = await check
            if detail is not None:
                problems[reason] = detail
        self.network_problems = problems
        self.write_status()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.check_network()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("network check failed")
                self._error(f"network check failed: {exc}")
            try:
                await self.send_heartbeat()
            except asyncio.CancelledError:
                raise
            except ControlPlaneError as exc:
                log.debug("heartbeat not sent: %s", exc)
            except Exception as exc:
                log.exception("heartbeat failed")
                self._error(f"heartbeat failed: {exc}")
            await asyncio.sleep(self.config.heartbeat_seconds)

    async def send_heartbeat(self) -> None:
        stats = await self.collect_stats()
        now = self.clock().timestamp()
        self.metrics.observe_peers(stats, now)
        active = sum(
            1
            for _, peer in stats
            if peer.last_handshake_at is not None
            and now - peer.last_handshake_at <= ACTIVE_HANDSHAKE_SECONDS
        )
        self.recently_shaken = active
        report = {
            "agent_version": __version__,
            "applied_revision": self.applied_revision or 0,
            "active_peers": active,
            "rx_bytes_total": min(INT64_MAX, sum(peer.rx_bytes for _, peer in stats)),
            "tx_bytes_total": min(INT64_MAX, sum(peer.tx_bytes for _, peer in stats)),
        }
        await self.client.heartbeat(report)
        self.last_heartbeat_at = self.clock()
        self.write_status()

    async def _metrics_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.metrics_seconds)
            try:
                await self.send_metrics()
            except asyncio.CancelledError:
                raise
            except ControlPlaneError as exc:
                log.debug("metrics not sent: %s", exc)
            except Exception as exc:
                log.exception("metrics failed")
                self._error(f"metrics failed: {exc}")

    async def send_metrics(self) -> int:
        """Reports the peers that changed; how many entries were sent."""
        entries, memo = changed_peers(await self.collect_stats(), self._reported, self.clock())
        if entries:
            try:
                await self.client.metrics(entries)
            except Refused as exc:
                self._error(f"metrics refused: {exc}")  # do not resend what it refuses
        self._reported = memo
        self.last_metrics_at = self.clock()
        self.write_status()
        return len(entries)

    # --- what it tells ---------------------------------------------------------------------

    @property
    def fail_static(self) -> bool:
        """Serving a set the control plane has not confirmed since it was last reachable."""
        return not self.synced and self.desired is not None

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.apply_error is not None:
            status = "error"
        elif self.applied_revision is None:
            status = "starting"
        elif self.fail_static:
            status = "fail-static"
        else:
            status = "ok"
        judged = self.verdict()
        code = 200 if status in ("ok", "fail-static") and judged.level != "fail" else 503
        return code, {
            "status": status,
            "revision": self.applied_revision,
            "peers": len(self.applied),
            **judged.as_dict(),
        }

    def verdict(self) -> Verdict:
        """The node's verdict with its reason code and fix (verdicts.py)."""
        lost = None if self.synced else self.unreachable_reason
        return judge(
            Facts(
                applied_revision=self.applied_revision,
                apply_error=self.apply_error,
                refused=lost if lost is not None and lost.startswith("refused") else None,
                unreachable=lost if lost is not None and not lost.startswith("refused") else None,
                rejected=None if self.rejected is None else self.rejected[1],
                network=self.network_problems,
                peers=len(self.applied),
                recently_shaken=self.recently_shaken,
            )
        )

    def _error(self, message: str) -> None:
        self.errors.append({"at": self.clock().isoformat(), "message": message})

    def status(self, *, running: bool = True) -> dict[str, Any]:
        return status_document(self, running=running)

    def write_status(self, *, running: bool = True) -> None:
        judged = self.verdict()
        if judged.reason != self._last_reason:  # each change of verdict, once, with its fix
            self._last_reason = judged.reason
            level = {"ok": logging.INFO, "warn": logging.WARNING, "fail": logging.ERROR}
            log.log(
                level[judged.level],
                "verdict %s (%s)%s; fix: %s",
                judged.level,
                judged.reason,
                f": {judged.detail}" if judged.detail else "",
                judged.fix,
            )
        try:
            self.store.save_status(self.status(running=running))
        except OSError as exc:
            log.error("cannot write %s: %s", self.store.status_path, exc)
