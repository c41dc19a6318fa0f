"""The chain-aware clock: the contracts decide with `block.timestamp`, which a dev chain can move
ahead of the wall clock, so every expiry comparison uses the later of the two."""

from __future__ import annotations

from datetime import UTC, datetime

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
