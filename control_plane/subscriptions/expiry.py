"""A subscriber's expiry, read from the SubscriptionManager contract (the truth), so a user who
just paid never waits for the indexer. Reads are cached for `expiry_cache_seconds`; an
unreachable chain raises ChainUnavailable (503), never a guess."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.client import ChainReader
from control_plane.subscriptions.models import Subscriber

_cache: dict[tuple[int, str], tuple[float, int]] = {}


async def chain_expiry(chain: ChainReader, address: str, max_age: float) -> int:
    """`expiresAt(address)` in unix seconds (0 if never paid), at most `max_age` seconds old."""
    key = (chain.chain_id, address.lower())
    cached = _cache.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < max_age:
        return cached[1]
    expiry = await chain.subscription_expiry(address)
    _cache[key] = (now, expiry)
    return expiry


async def current_expiry(
    session: AsyncSession, chain: ChainReader, address: str, max_age: float
) -> datetime | None:
    """The subscriber's expiry from the chain, recorded in `subscribers` (the expiry job's
    input); None if the address never paid."""
    seconds = await chain_expiry(chain, address, max_age)
    if seconds == 0:
        return None
    expires_at = datetime.fromtimestamp(seconds, UTC)
    statement = insert(Subscriber).values(address=address.lower(), expires_at=expires_at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Subscriber.address],
            set_={"expires_at": statement.excluded.expires_at},
            where=Subscriber.expires_at != statement.excluded.expires_at,
        )
    )
    return expires_at
