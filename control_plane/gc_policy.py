"""The server process's garbage-collector policy: full collections on a timer, not on CPython's
allocation heuristic.

Why: with 10,000 agents' long-polls parked, the server holds ~3 million long-lived objects
(each parked request's coroutine stack, scope and transport), and every re-poll parks a new set
that outlives the young generations. CPython then runs a full collection every 10-30 s, each
scanning all of them for 1.0-1.4 s with the event loop stopped, and finding almost nothing to
free (refcounting frees a finished poll): every request arriving meanwhile waits (P8 in
bench/report.md: p99 of issuance 1.5 s at 31% of a core busy). Here the young generations are
collected as before, the objects alive after start-up are frozen out of every collection, and
a full collection runs every `gc_full_collection_seconds` (cyclic garbage waits at most that
long). Applied by the process entry point (`build_from_env`), never by `create_app`, so a test
process or an embedding program keeps its own policy."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("nodus.gc")

# count[2] never exceeds this, so CPython starts no full collection by itself
NO_AUTOMATIC_FULL_COLLECTION = 2**31 - 1
SLOW_COLLECTION_SECONDS = 0.5


def take_over_full_collections() -> None:
    """Freezes what start-up allocated (modules, the app, its routes) and stops automatic full
    collections; `collect_periodically` must then run in the process's event loop."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NO_AUTOMATIC_FULL_COLLECTION)


async def collect_periodically(every_seconds: float) -> None:
    """A full collection every `every_seconds`, for as long as the task runs."""
    while True:
        await asyncio.sleep(every_seconds)
        started = time.perf_counter()
        found = gc.collect()
        took = time.perf_counter() - started
        if took > SLOW_COLLECTION_SECONDS:
            log.info("full garbage collection took %.2f s (%d objects freed)", took, found)
