"""The OpenVPN backend: one OpenVPN 2.6 server kept in step with the node's desired peer set
(the package's docstring says what it does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509

from node_agent.backends import PeerStats
from node_agent.backends.openvpn.clients import (
    ClientEntry,
    desired_entries,
    parse_client_entry,
    plan_clients,
    render_client_entry,
)
from node_agent.backends.openvpn.crl import (
    CrlAlarm,
    CrlLevel,
    crl_decision,
    retry_delay,
)
from node_agent.backends.openvpn.files import (
    Paths,
    read_file,
    render_server_config,
    write_atomic,
)
from node_agent.backends.openvpn.management import (
    ManagementError,
    ManagementSession,
)
from node_agent.backends.openvpn.material import (
    SERIAL,
    Clock,
    CrlInfo,
    InvalidMaterial,
    MaterialSource,
    OpenVpnMaterial,
    check_material,
    crl_info,
    is_newer_crl,
    normalize_serial,
    utc_now,
)
from node_agent.backends.openvpn.process import (
    ServerProcess,
    digest,
    is_our_server,
    pid_alive,
    running_server,
    spawn,
)
from node_agent.backends.openvpn.status import (
    StatusSnapshot,
    address_index,
    parse_status,
    serial_of,
    stats_from,
)
from node_agent.backends.openvpn.templates import CLIENT_CONNECT_SCRIPT
from node_agent.config import OpenVpnOptions
from node_agent.peers import OpenVpnPeer, Peer

log = logging.getLogger("nodus.agent.openvpn")

KILL_MEMORY_SECONDS = 10.0  # a killed session lingers in the status for OpenVPN's 5 s exit delay


@dataclass(frozen=True, slots=True)
class OpenVpnHealth:
    """For `nodus-agent status` and heartbeats."""

    server_running: bool
    server_pid: int | None
    clients: int  # entries on disk (admitted serials)
    crl_level: CrlLevel
    crl_next_update: datetime | None
    material_fetched_at: datetime | None
    last_error: str | None


class OpenVpnBackend:
    """A `VpnBackend` for OpenVPN (see the module's docstring). The first `apply` or `stats`
    starts it (or call `start()`, or use `async with`); `apply` and `stats` are safe to call
    concurrently with each other and with the maintenance loop."""

    def __init__(
        self,
        settings: OpenVpnOptions,
        material_source: MaterialSource,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.paths = Paths.under(settings.state_dir)
        self._source = material_source
        self._clock = clock
        self._lock = asyncio.Lock()  # the files, the entries and the server
        self._fetch_lock = asyncio.Lock()  # one material fetch at a time
        self._material: OpenVpnMaterial | None = None
        self._crl: CrlInfo | None = None
        self._fetched_at: datetime | None = None
        self._failures = 0
        self._retry_at: datetime | None = None
        self._desired: dict[str, OpenVpnPeer] | None = None  # None: none applied since start
        self._entries: dict[str, ClientEntry] = {}
        self._server: ServerProcess | None = None
        self._server_failures = 0
        self._restart_at = 0.0  # monotonic
        self._last_reconcile = 0.0
        self._alarm = CrlAlarm()
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._killed: dict[int, float] = {}  # client id -> monotonic time of its client-kill

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, run_maintenance: bool = True) -> None:
        """Prepares the state directory, loads the last good material (if any), fetches fresh
        material (if the control plane answers), starts or adopts the server, and starts the
        maintenance loop (unless `run_maintenance` is False: then the caller calls `maintain()`
        every few seconds). Returns even if the control plane is unreachable: the loop keeps
        trying, and a node with material on disk serves meanwhile (fail-static). `apply` and
        `stats` call it if nobody did."""
        if self._started:
            return
        self._started = True
        for directory in (self.paths.root, self.paths.pki, self.paths.clients, self.paths.run):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        write_atomic(self.paths.client_connect, CLIENT_CONNECT_SCRIPT, 0o700)
        async with self._lock:
            self._entries = self._load_entries()
            self._load_saved_material()
            if self._material is not None:  # serve what we had at once (fail-static)
                await self._sync_locked()
                await self._ensure_server_locked()
        await self._refresh("start")
        async with self._lock:
            if self._material is not None:
                await self._sync_locked()
                await self._ensure_server_locked()
        if run_maintenance:
            self._task = asyncio.create_task(self._maintain_forever(), name="nodus-openvpn")

    async def stop(self, *, keep_server: bool = False) -> None:
        """Stops the maintenance loop and (unless `keep_server`) the OpenVPN server. A kept
        server goes on serving the last applied set; the next start adopts it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._started = False
        async with self._lock:
            if self._server is not None and not keep_server:
                await self._server.stop(self.settings.stop_timeout_seconds)
                self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- VpnBackend --------------------------------------------------------------------------

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        """Makes the admitted clients exactly the OpenVPN peers in `peers` (others are ignored):
        writes and removes only the entries that differ, cuts the sessions of removed peers at
        once, and then fetches a fresh CRL (which lists the revoked certificates)."""
        desired: dict[str, OpenVpnPeer] = {}
        for peer in peers:
            if not isinstance(peer, OpenVpnPeer):
                continue
            try:
                serial = normalize_serial(peer.cert_serial)
            except ValueError as exc:
                log.error("peer refused (never applied): %s", exc)
                continue
            desired.setdefault(serial, peer)
        await self.start()
        async with self._lock:
            self._desired = desired
            removed = await self._sync_locked()
        if removed:  # the CRL now lists the revoked certificates
            await self._refresh(f"{len(removed)} peer(s) removed")

    async def stats(self) -> list[PeerStats]:
        """Per admitted serial: bytes received from / sent to the client and the latest sign of
        life, from the status file (or, if that is stale or half-written, the management
        socket). Empty while the server is down."""
        await self.start()
        if self._server is None or not self._server.alive():
            return []
        snapshot = self._status_file()
        if snapshot is None:
            try:
                async with self._management() as management:
                    snapshot = await management.status()
            except ManagementError as exc:
                log.warning("no OpenVPN status: %s", exc)
                return []
        return stats_from(snapshot, self._entries)

    # --- extras ------------------------------------------------------------------------------

    def health(self) -> OpenVpnHealth:
        decision = crl_decision(
            self.settings.crl_policy, self._clock(), self._crl, self._fetched_at, self._retry_at
        )
        return OpenVpnHealth(
            server_running=self._server is not None and self._server.alive(),
            server_pid=self._server.pid if self._server is not None else None,
            clients=len(self._entries),
            crl_level=decision.level,
            crl_next_update=self._crl.next_update if self._crl is not None else None,
            material_fetched_at=self._fetched_at,
            last_error=self._last_error,
        )

    async def refresh_material(self, reason: str = "requested") -> bool:
        """Fetches and installs fresh material (and CRL) now; False if that failed."""
        return await self._refresh(reason)

    async def wait_ready(self, seconds: float = 20.0) -> None:
        """Returns once the server answers on its management socket with state CONNECTED
        (initialized, listening). TimeoutError after `seconds`."""
        async with asyncio.timeout(seconds):
            while True:
                if self._server is not None and self._server.alive():
                    try:
                        async with self._management() as management:
                            state = await management.state()
                        if state == "CONNECTED":
                            return
                    except ManagementError:
                        pass
                await asyncio.sleep(0.1)

    async def maintain(self) -> None:
        """One maintenance pass: CRL freshness, expired peers, server liveness, and (every
        `reconcile_interval_seconds`) sessions that no entry admits."""
        now = self._clock()
        policy = self.settings.crl_policy
        decision = crl_decision(policy, now, self._crl, self._fetched_at, self._retry_at)
        if decision.refresh_due:
            await self._refresh("scheduled")
            decision = crl_decision(policy, now, self._crl, self._fetched_at, self._retry_at)
        self._alarm.sound(decision, self._last_error)
        async with self._lock:
            cutoff = int(now.timestamp())
            if self._material is not None and any(
                e.expires_at <= cutoff for e in self._entries.values()
            ):
                await self._sync_locked()
            await self._ensure_server_locked()
            if time.monotonic() - self._last_reconcile >= self.settings.reconcile_interval_seconds:
                self._last_reconcile = time.monotonic()
                await self._reconcile_locked()

    # --- internals ---------------------------------------------------------------------------

    async def _maintain_forever(self) -> None:
        while True:
            try:
                await self.maintain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving: log and try again next pass
                self._last_error = f"maintenance: {exc!r}"
                log.exception("OpenVPN maintenance failed")
            await asyncio.sleep(self.settings.maintenance_interval_seconds)

    def _management(self) -> ManagementSession:
        return ManagementSession(self.paths.management, self.settings.management_timeout_seconds)

    def _load_entries(self) -> dict[str, ClientEntry]:
        entries: dict[str, ClientEntry] = {}
        for path in self.paths.clients.glob("*.conf"):
            serial = path.stem
            text = read_file(path)
            entry = parse_client_entry(serial, text) if text is not None else None
            if entry is None or not SERIAL.match(serial):
                log.warning("removing %s: not an entry this agent wrote", path)
                path.unlink(missing_ok=True)
                continue
            entries[serial] = entry
        return entries

    def _load_saved_material(self) -> None:
        text = read_file(self.paths.material)
        if text is None:
            return
        try:
            material = OpenVpnMaterial.from_json(json.loads(text))
            ca = x509.load_pem_x509_certificate(material.ca_cert.encode())
            info = crl_info(material.crl, ca)
        except (ValueError, TypeError) as exc:
            log.error("ignoring the saved OpenVPN material %s: %s", self.paths.material, exc)
            return
        self._material, self._crl = material, info
        # Files written from it may be older (a crash mid-install): write them again.
        self._write_material_files(material)

    async def _refresh(self, reason: str) -> bool:
        """Fetches fresh material (without holding the lock: a slow control plane never delays
        `apply` or a cut) and installs it under the lock. False (and a backoff) on failure."""
        async with self._fetch_lock:
            now = self._clock()
            try:
                async with asyncio.timeout(self.settings.material_timeout_seconds):
                    material = await self._source()
                info = check_material(material, now)
                async with self._lock:
                    if not is_newer_crl(info, self._crl):
                        raise InvalidMaterial("crl: older than the one in place (lagging replica?)")
                    self._failures = 0
                    self._retry_at = None
                    self._fetched_at = now
                    self._last_error = None
                    await self._install_locked(material, info, reason)
                return True
            except Exception as exc:  # any source's failure: back off, keep the last good one
                self._failures += 1
                level = crl_decision(self.settings.crl_policy, now, self._crl, None, None).level
                delay = retry_delay(self.settings.crl_policy, self._failures, level)
                delay *= random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not crypto)
                self._retry_at = now + delay
                self._last_error = f"material ({reason}): {exc}"
                log.warning(
                    "OpenVPN material fetch failed (%s; %d in a row; next try in %.0fs): %s",
                    reason,
                    self._failures,
                    delay.total_seconds(),
                    exc,
                )
                return False

    def _write_material_files(self, material: OpenVpnMaterial) -> None:
        files = {
            self.paths.ca: material.ca_cert,
            self.paths.cert: material.server_cert,
            self.paths.key: material.server_key,
            self.paths.tls_crypt: material.tls_crypt_key,
            self.paths.crl: material.crl,
        }
        for path, content in files.items():
            if read_file(path) != content:
                write_atomic(path, content)
        config = render_server_config(self.settings, material, self.paths)
        if read_file(self.paths.config) != config:
            write_atomic(self.paths.config, config)

    async def _install_locked(self, material: OpenVpnMaterial, info: CrlInfo, reason: str) -> None:
        old = self._material
        old_config = read_file(self.paths.config)
        write_atomic(self.paths.material, json.dumps(material.to_json()))
        self._write_material_files(material)
        self._material, self._crl = material, info
        log.info(
            "OpenVPN material installed (%s): CRL #%s with %d revoked, next update %s",
            reason,
            info.number,
            len(info.revoked),
            info.next_update.isoformat(),
        )
        restart = old is not None and read_file(self.paths.config) != old_config
        # New pools move every entry; a CRL may know of a revocation the feed has not said yet.
        await self._sync_locked()
        if restart and self._server is not None:
            log.warning("OpenVPN material changed (CA, keys, port or pools): restarting OpenVPN")
            await self._server.stop(self.settings.stop_timeout_seconds)
            self._server = None
            self._restart_at = 0.0
            await self._ensure_server_locked()

    async def _sync_locked(self) -> frozenset[str]:
        """Makes the entries on disk the wanted ones; cuts sessions that lost theirs. Returns
        the removed serials."""
        material = self._material
        if material is None:
            return frozenset()
        now = self._clock()
        revoked = self._crl.revoked if self._crl is not None else frozenset()
        if self._desired is not None:
            peers: Iterable[OpenVpnPeer] = self._desired.values()
        else:  # nothing applied since start: keep what is on disk (fail-static), re-checked
            peers = [
                OpenVpnPeer(
                    cert_serial=serial,
                    allowed_ips=(f"{entry.ipv4}/32", f"{entry.ipv6.ip}/128"),
                    expires_at=datetime.fromtimestamp(entry.expires_at, UTC),
                )
                for serial, entry in self._entries.items()
            ]
        wanted, refused = desired_entries(peers, material, now, revoked)
        for reason in refused:
            log.error("%s (never applied; the rest is)", reason)
        current = dict(self._entries)
        plan = plan_clients(current, wanted)
        if plan.empty:
            return frozenset()
        for serial in plan.remove:
            (self.paths.clients / f"{serial}.conf").unlink(missing_ok=True)
            del self._entries[serial]
        for serial, entry in plan.write.items():
            write_atomic(self.paths.clients / f"{serial}.conf", render_client_entry(entry))
            self._entries[serial] = entry
        log.info(
            "OpenVPN clients: %d admitted (+%d new or changed, -%d removed)",
            len(self._entries),
            len(plan.write),
            len(plan.remove),
        )
        kills = dict.fromkeys(plan.cut, "HALT") | dict.fromkeys(plan.reconnect, "RESTART")
        if kills:
            await self._cut_locked(kills, current)
        return plan.remove

    async def _cut_locked(
        self, kills: Mapping[str, str], entries: Mapping[str, ClientEntry]
    ) -> None:
        """Ends the live sessions of `kills` (serial -> HALT or RESTART), found by the
        addresses their (old) entries pushed."""
        if self._server is None or not self._server.alive():
            return
        by_address = {a: s for a, s in address_index(entries).items() if s in kills}
        try:
            async with self._management() as management:
                snapshot = await management.status()
                for client in snapshot.clients:
                    serial = serial_of(client, by_address)
                    if serial is None or client.client_id is None:
                        continue
                    await self._kill(management, client.client_id, kills[serial])
                    log.info(
                        "cut OpenVPN session %d (serial %s, %s, %s)",
                        client.client_id,
                        serial,
                        client.common_name,
                        kills[serial],
                    )
        except ManagementError as exc:
            self._last_error = f"cut: {exc}"
            log.error("could not cut OpenVPN sessions %s: %s", sorted(kills), exc)

    async def _reconcile_locked(self) -> None:
        """Cuts sessions holding an address no entry pushes (left over from before a restart,
        or from an entry removed while the server was unreachable)."""
        if self._server is None or not self._server.alive():
            return
        by_address = address_index(self._entries)
        try:
            async with self._management() as management:
                snapshot = await management.status()
                for client in snapshot.clients:
                    if client.client_id is None or client.virtual_address is None:
                        continue  # still connecting: client-connect has not admitted it yet
                    if serial_of(client, by_address) is None and not self._just_killed(
                        client.client_id
                    ):
                        await self._kill(management, client.client_id, "HALT")
                        log.warning(
                            "cut OpenVPN session %d (%s, %s): no admitted peer holds %s",
                            client.client_id,
                            client.common_name,
                            client.real_address,
                            client.virtual_address,
                        )
        except ManagementError as exc:
            log.warning("could not reconcile OpenVPN sessions: %s", exc)

    def _just_killed(self, client_id: int) -> bool:
        """OpenVPN keeps a killed session listed for a few seconds (its delayed exit)."""
        now = time.monotonic()
        self._killed = {c: at for c, at in self._killed.items() if now - at < KILL_MEMORY_SECONDS}
        return client_id in self._killed

    async def _kill(self, management: ManagementSession, client_id: int, message: str) -> None:
        await management.kill(client_id, message)
        self._killed[client_id] = time.monotonic()

    async def _ensure_server_locked(self) -> None:
        if self._material is None:
            return
        if self._server is not None and self._server.alive():
            return
        if self._server is not None:
            code = self._server.returncode
            self._server_failures += 1
            delay = min(2.0**self._server_failures, self.settings.restart_backoff_max_seconds)
            self._restart_at = time.monotonic() + delay
            self._last_error = f"openvpn exited ({code})"
            log.error(
                "OpenVPN (pid %d) exited with %s; restarting in %.0fs. Its log ends:\n%s",
                self._server.pid,
                code,
                delay,
                self._log_tail(),
            )
            self._server = None
        if time.monotonic() < self._restart_at:
            return
        config = read_file(self.paths.config) or ""
        adopted = running_server(self.paths, config)
        if adopted is not None:
            log.info("adopted the running OpenVPN server (pid %d)", adopted)
            self._server = ServerProcess(adopted, None)
            return
        await self._wait_gone(self.paths.pid)
        if await self._management_answers():
            # A server we cannot name yet (it has not written its pid file): never start a
            # second one, which would take its management socket path and fail on the port.
            log.warning(
                "an OpenVPN server answers on %s; adopting it next pass", self.paths.management
            )
            return
        self.paths.management.unlink(missing_ok=True)
        command = [
            *self.settings.command_prefix,
            self.settings.openvpn_binary,
            "--config",
            str(self.paths.config),
        ]
        process = spawn(command, self.paths.log)
        write_atomic(self.paths.config_digest, digest(config))
        self._server = ServerProcess(process.pid, process)
        log.info("started OpenVPN (pid %d): %s", process.pid, " ".join(command))

    async def _management_answers(self) -> bool:
        if not self.paths.management.exists():
            return False
        try:
            async with ManagementSession(self.paths.management, 1.0):
                return True
        except ManagementError:
            return False

    async def _wait_gone(self, pid_file: Path, seconds: float = 10.0) -> None:
        """Waits (up to `seconds`) for the server named in `pid_file` to exit, if it runs."""
        text = read_file(pid_file)
        if text is None or not text.strip().isdigit():
            return
        pid = int(text.strip())
        deadline = time.monotonic() + seconds
        while pid_alive(pid) and is_our_server(pid, self.paths):
            if time.monotonic() > deadline:
                log.error("OpenVPN (pid %d) does not exit: killing it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return
            await asyncio.sleep(0.05)

    def _status_file(self) -> StatusSnapshot | None:
        """The status file if it is complete and fresh (three intervals, at least 30 s)."""
        text = read_file(self.paths.status)
        if text is None:
            return None
        snapshot = parse_status(text)
        max_age = max(3 * self.settings.status_interval_seconds, 30)
        if not snapshot.complete or snapshot.time is None:
            return None
        if abs(time.time() - snapshot.time) > max_age:
            return None
        return snapshot

    def _log_tail(self, lines: int = 15) -> str:
        text = read_file(self.paths.log) or ""
        return "\n".join(text.splitlines()[-lines:])
