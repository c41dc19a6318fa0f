"""The chain-aware clock: the contracts decide with `block.timestamp`, which a dev chain can move
ahead of the wall clock, so every expiry comparison uses the later of the two."""

from __future__ import annotations

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
    """`chain_now` without a chain read per request: the head's lead over the wall clock (a dev
    chain moved ahead with evm_increaseTime; about zero on a real chain) is read at most every
    `max_age` seconds, and in between the wall clock plus that lead answers. An unreachable
    chain keeps the last lead (none at first: the wall clock alone, and a lapse is still a
    lapse). `max_age` 0 reads the head every time (tests that move a dev chain's clock)."""

    def __init__(self) -> None:
        self._lead = 0.0
        self._read_at: float | None = None
        self.head_number: int | None = None  # the last head read (None: never reached)

    async def now(self, chain: ChainReader, max_age: float) -> datetime:
        started = time.monotonic()
        if self._read_at is None or started - self._read_at >= max_age:
            self._read_at = started
            try:
                head = await chain.block_header("latest")
            except ChainUnavailable:
                pass
            else:
                self._lead = max(0.0, head.timestamp - time.time())
                self.head_number = head.number
        return datetime.now(UTC) + timedelta(seconds=self._lead)
