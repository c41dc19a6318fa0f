"""The chain-aware clock: the contracts decide with `block.timestamp`, which a dev chain can move
ahead of the wall clock, so every expiry comparison uses the later of the two."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from control_plane.chain.client import ChainReader
from control_plane.errors import ChainUnavailable


def later_of_clock_and(head_timestamp: int) -> datetime:
    """The later of the wall clock and a chain head's timestamp: the contract decides with
    `block.timestamp`, which a dev chain can move ahead of the wall clock (evm_increaseTime)."""
    return max(datetime.now(UTC), datetime.fromtimestamp(head_timestamp, UTC))


async def chain_now(chain: ChainReader) -> datetime:
    """`later_of_clock_and` the current head; with the chain unreachable, the wall clock alone
    (a lapse is still a lapse)."""
    try:
        head = await chain.block_header("latest")
    except ChainUnavailable:
        return datetime.now(UTC)
    return later_of_clock_and(head.timestamp)


class ChainClock:
    """`chain_now` without a chain read on the request path: the head's lead over the wall clock
    (a dev chain moved ahead with evm_increaseTime; about zero on a real chain) is refreshed in
    the background when it is older than `max_age` seconds, and meanwhile the wall clock plus
    the last lead answers at once. So a frozen chain RPC never holds a request for its timeout.
    An unreachable chain keeps the last lead (none at first: the wall clock alone, and a lapse
    is still a lapse). `max_age` 0 reads the head on every call, in line (tests that move a dev
    chain's clock and decide right after)."""

    def __init__(self) -> None:
        self._lead = 0.0
        self._read_at: float | None = None
        self._refresh: asyncio.Task[None] | None = None
        self.head_number: int | None = None  # the last head read (None: never reached)

    async def now(self, chain: ChainReader, max_age: float) -> datetime:
        if max_age <= 0:
            await self._read(chain)
        elif self._stale(max_age) and (self._refresh is None or self._refresh.done()):
            # Held on self: a task nobody references may be collected mid-flight.
            self._refresh = asyncio.create_task(self._read(chain))
        return datetime.now(UTC) + timedelta(seconds=self._lead)

    def _stale(self, max_age: float) -> bool:
        return self._read_at is None or time.monotonic() - self._read_at >= max_age

    async def _read(self, chain: ChainReader) -> None:
        self._read_at = time.monotonic()
        try:
            head = await chain.block_header("latest")
        except ChainUnavailable:
            return
        self._lead = max(0.0, head.timestamp - time.time())
        self.head_number = head.number

    async def aclose(self) -> None:
        """Cancels a refresh in flight (at shutdown)."""
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
