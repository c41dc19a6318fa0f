"""Each node's desired peer set has a monotonic revision. Whatever changes the set (a config
issued or revoked, a subscription lapsing) bumps it in the same transaction; the NOTIFY is
delivered to every replica only when that transaction commits, so no listener ever sees a
revision before its data.

A bump takes the node's row lock until commit, so concurrent changes on one node queue on it:
the bump comes last, just before the commit (config issuance bumps in its insert statement,
configs/repository.py), so the lock is held for as short as possible."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PEERS_CHANNEL = "nodus_peers"

_BUMP = text(
    "UPDATE nodes SET revision = revision + 1 WHERE id = :id "
    "RETURNING revision, pg_notify(:channel, id || ':' || revision)"
)


async def bump_revision(session: AsyncSession, node_id: str) -> int:
    """Increments the node's revision and announces `<node_id>:<revision>` on commit (one
    statement)."""
    row = (await session.execute(_BUMP, {"id": node_id, "channel": PEERS_CHANNEL})).one_or_none()
    if row is None:
        raise LookupError(f"no node {node_id}")
    return int(row[0])
