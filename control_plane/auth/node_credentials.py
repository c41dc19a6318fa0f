"""Per replica: every node's agent key and NodeRegistry status as the indexer mirrors them, read
in one query and reused for `node_token_recheck_seconds`, so checking a node agent's token against
the chain costs a dictionary lookup, not a pooled connection per poll.

Before this, each agent's poll re-read its own node's row once its check was older than the
recheck time; 10,000 long-polls coming back together then queued for the pool's connections and
starved issuance (P8 in bench/report.md). Now one read per replica per recheck period covers every
node, and concurrent requests that find the snapshot stale wait on that one read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.auth import repository
from control_plane.db import unit_of_work


class NodeCredentials:
    """The snapshot and its single-flight refresh. `refusal` judges a token from it."""

    def __init__(self, max_age_seconds: float) -> None:
        self.max_age_seconds = max_age_seconds
        self._nodes: Mapping[str, tuple[str, str | None]] = {}
        self._expires = 0.0  # time.monotonic() after which the snapshot is read again
        self._refresh: asyncio.Task[None] | None = None

    def fresh(self) -> bool:
        return time.monotonic() < self._expires

    async def ensure_fresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Reads the mirror again if the snapshot is stale; requests arriving meanwhile wait
        on the same read instead of starting their own."""
        if self.fresh():
            return
        task = self._refresh
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._refresh = asyncio.get_running_loop().create_task(self._read(sessions))
        # shield: one waiter cancelled (its client went away) does not cancel the others' read
        await asyncio.shield(task)

    async def _read(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        started = time.monotonic()
        async with unit_of_work(sessions) as session:
            self._nodes = await repository.chain_node_states(session)
        # Counted from before the read: a row the read missed is never trusted for longer.
        self._expires = started + self.max_age_seconds

    def refusal(self, node_id: str, agent: str | None) -> str | None:
        """Why a token of `node_id` signed in by `agent` is no longer good, or None. A node the
        indexer has not mirrored yet passes: its token came from a live chain read moments ago,
        and an exit or key change is indexed after the registration."""
        state = self._nodes.get(node_id)
        if state is None:
            return None
        mirrored_agent, unusable_status = state
        if agent is None or mirrored_agent != agent.lower():
            return "the node's agent key changed on-chain; sign in again with the new key"
        if unusable_status is not None:
            return f"the node is no longer Active on-chain (status {unusable_status!r})"
        return None
