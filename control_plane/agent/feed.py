"""Each replica's in-memory view of every node's revision, kept current by PostgreSQL
LISTEN/NOTIFY, so that a long-poll with nothing new touches no table.

One dedicated asyncpg connection (outside the pool) runs `LISTEN nodus_peers`; `bump_revision`
sends `<node_id>:<revision>` in the changing transaction, so a notification arrives only once its
data is committed. The map is loaded after LISTEN is in place: a change committed before the
snapshot is in it, one committed after it is notified (notifications that arrive during the load
are applied on top of it). If the connection drops (or stops answering the periodic ping) the feed
is not `live`: callers read revisions from the database until it has reconnected, re-listened and
reloaded the map, which also wakes the waiters whose node moved meanwhile.

A node the map does not know (registered after the load, never changed since) is looked up by
the caller and recorded with `observe`. Waiters are bounded per replica and per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.agent import repository
from control_plane.db import unit_of_work
from control_plane.revisions import PEERS_CHANNEL

log = logging.getLogger("nodus.agent.feed")

MAX_WAITERS = 10_000  # long-polls parked on one replica at once
MAX_WAITERS_PER_NODE = 4  # one agent needs one; a few cover restarts and a stray second agent
# Full reads of peer sets at once per replica: a change to many nodes (the expiry job) wakes many
# polls together; they queue here instead of draining the connection pool the whole API shares.
MAX_CONCURRENT_READS = 8
PING_INTERVAL_SECONDS = 30.0  # finds a silently dead LISTEN connection (no table touched)
PING_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
STARTUP_WAIT_SECONDS = 15.0  # then the application starts anyway, the feed reconnecting
RECONNECT_MAX_DELAY_SECONDS = 30.0


_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class FeedBusy(Exception):
    """Too many long-polls are parked (on this replica or for this node)."""


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://...`) as a plain libpq DSN for asyncpg."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class PeerFeed:
    """node_id -> revision for this replica, and a way to wait until a node moves past one."""

    def __init__(
        self,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_waiters: int = MAX_WAITERS,
        max_waiters_per_node: int = MAX_WAITERS_PER_NODE,
        ping_interval: float = PING_INTERVAL_SECONDS,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._sessions = sessions
        self.max_waiters = max_waiters
        self.max_waiters_per_node = max_waiters_per_node
        self._ping_interval = ping_interval
        self._revisions: dict[str, int] = {}
        self._changed: dict[str, asyncio.Event] = {}  # only for nodes someone waits on
        self._waiters: dict[str, int] = {}
        self._waiting = 0
        # Told the number parked whenever it changes (the app points it at its gauge).
        self.on_waiting: Callable[[int], None] = lambda _: None
        self._pending: list[tuple[str, int]] | None = None  # notifications during a reload
        self._live = False
        self._closing = False
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self.reads = asyncio.Semaphore(MAX_CONCURRENT_READS)

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_waiters: int = MAX_WAITERS,
        max_waiters_per_node: int = MAX_WAITERS_PER_NODE,
        ping_interval: float = PING_INTERVAL_SECONDS,
    ) -> PeerFeed:
        """Connects, listens and loads the map before returning (so the first polls are served
        from memory). If the database is unreachable the application still starts: the feed
        keeps retrying in the background and callers read revisions from the database."""
        feed = cls(
            database_url,
            sessions,
            max_waiters=max_waiters,
            max_waiters_per_node=max_waiters_per_node,
            ping_interval=ping_interval,
        )
        feed._task = asyncio.create_task(feed._run(), name="nodus-peer-feed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STARTUP_WAIT_SECONDS):
                await feed._first_attempt.wait()
        return feed

    def begin_closing(self) -> None:
        """The replica is going away (SIGTERM): every parked poll answers now (503
        shutting_down, so its agent reconnects to another replica) and no new poll parks."""
        self._closing = True
        for event in self._changed.values():
            event.set()
        self._changed.clear()

    async def stop(self) -> None:
        self.begin_closing()
        self._live = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def waiting(self) -> int:
        """Long-polls parked on this replica now."""
        return self._waiting

    @property
    def closing(self) -> bool:
        """True once the replica is shutting down."""
        return self._closing

    @property
    def live(self) -> bool:
        """True while the map is known to be current (listening and loaded)."""
        return self._live

    @property
    def connection(self) -> asyncpg.Connection | None:
        """The LISTEN connection (None while reconnecting); for diagnostics and tests."""
        return self._connection

    async def _run(self) -> None:
        delay = 0.5
        while not self._closing:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self._dsn,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    server_settings={"application_name": "nodus-peer-feed"},
                )
            except _CONNECTION_ERRORS as exc:
                log.warning("peer feed cannot connect: %s", exc)
            else:
                self._connection = connection
                try:
                    connection.add_termination_listener(functools.partial(_closed, lost))
                    await connection.add_listener(PEERS_CHANNEL, self._on_notification)
                    await self._reload()
                    self._live = True
                    delay = 0.5
                    self._first_attempt.set()
                    await self._watch(connection, lost)
                    log.warning("peer feed connection closed; reconnecting")
                except _CONNECTION_ERRORS as exc:
                    log.warning("peer feed lost its connection: %s", exc)
                except Exception:  # the reload's SQLAlchemy errors, anything unforeseen
                    log.exception("peer feed failed; reconnecting")
                finally:
                    self._live = False
                    self._connection = None
                    await _close(connection)
            self._first_attempt.set()
            if self._closing:
                return
            await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 (jitter, not crypto)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)

    async def _watch(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Returns when the connection closes; pings it while idle to notice a dead peer."""
        while not lost.is_set():
            try:
                async with asyncio.timeout(self._ping_interval):
                    await lost.wait()
            except TimeoutError:
                await connection.execute("SELECT 1", timeout=PING_TIMEOUT_SECONDS)

    async def _reload(self) -> None:
        """Replaces the map with a snapshot plus every notification received since LISTEN
        (a commit before the snapshot is in it, one after it is notified). Replacing rather than
        merging drops nodes that are gone and follows a database restored to an older state."""
        self._pending = []
        try:
            async with unit_of_work(self._sessions) as session:
                revisions = await repository.all_revisions(session)
            for node_id, revision in self._pending:
                revisions[node_id] = max(revisions.get(node_id, -1), revision)
        finally:
            self._pending = None
        previous, self._revisions = self._revisions, revisions
        for node_id, revision in revisions.items():
            if revision > previous.get(node_id, -1):
                event = self._changed.pop(node_id, None)
                if event is not None:
                    event.set()

    def _on_notification(
        self, _connection: asyncpg.Connection, _pid: int, _channel: str, payload: str
    ) -> None:
        node_id, _, revision = payload.rpartition(":")
        if not node_id or not revision.isdigit():
            log.warning("ignored a malformed %s payload: %r", PEERS_CHANNEL, payload[:200])
            return
        if self._pending is not None:
            self._pending.append((node_id, int(revision)))
        self.observe(node_id, int(revision))

    # --- the map -----------------------------------------------------------------------------

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """For short reads outside a request's transaction."""
        return self._sessions

    def revision(self, node_id: str) -> int | None:
        """The node's revision from memory; None if unknown or while the feed is not live."""
        return self._revisions.get(node_id) if self._live else None

    def observe(self, node_id: str, revision: int) -> None:
        """Records a revision seen anywhere (a notification, a database read); only forward."""
        if revision <= self._revisions.get(node_id, -1):
            return
        self._revisions[node_id] = revision
        event = self._changed.pop(node_id, None)
        if event is not None:
            event.set()

    async def wait_past(self, node_id: str, since: int, seconds: float) -> None:
        """Returns once the node's revision in memory is past `since`, or after `seconds`
        seconds (or at shutdown). Raises FeedBusy if too many polls are parked already."""
        if self._waiting >= self.max_waiters:
            raise FeedBusy("too many long-polls on this replica")
        if self._waiters.get(node_id, 0) >= self.max_waiters_per_node:
            raise FeedBusy("too many long-polls for this node")
        self._waiting += 1
        self.on_waiting(self._waiting)
        self._waiters[node_id] = self._waiters.get(node_id, 0) + 1
        try:
            async with asyncio.timeout(seconds):
                while self._revisions.get(node_id, -1) <= since and not self._closing:
                    event = self._changed.get(node_id)
                    if event is None:
                        event = self._changed[node_id] = asyncio.Event()
                    await event.wait()
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1
            self.on_waiting(self._waiting)
            left = self._waiters[node_id] - 1
            if left:
                self._waiters[node_id] = left
            else:
                del self._waiters[node_id]
                self._changed.pop(node_id, None)


def _closed(lost: asyncio.Event, _connection: asyncpg.Connection) -> None:
    lost.set()


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=5)
    except Exception:  # already broken: drop it
        connection.terminate()
