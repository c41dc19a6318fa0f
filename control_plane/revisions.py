"""Each node's desired peer set has a monotonic revision. Whatever changes the set (a config
issued or revoked, a subscription lapsing) calls `bump_revision` in the same transaction; the
NOTIFY is delivered to every replica only when that transaction commits, so no listener ever
sees a revision before its data."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PEERS_CHANNEL = "nodus_peers"


async def bump_revision(session: AsyncSession, node_id: str) -> int:
    """Increments the node's revision and announces `<node_id>:<revision>` on commit."""
    revision = await session.scalar(
        text("UPDATE nodes SET revision = revision + 1 WHERE id = :id RETURNING revision"),
        {"id": node_id},
    )
    if revision is None:
        raise LookupError(f"no node {node_id}")
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": PEERS_CHANNEL, "payload": f"{node_id}:{revision}"},
    )
    return int(revision)
