"""Each node's desired peer set has a monotonic revision. Whatever changes the set (a config
issued or revoked, a subscription lapsing) calls `bump_revision` in the same transaction; the
NOTIFY is delivered to every replica only when that transaction commits, so no listener ever
sees a revision before its data.

The bump takes the node's row lock until commit, so concurrent changes on one node queue on it:
callers bump last, just before they commit, to hold it for as short as possible. The increment,
its announcement and (for `bump_live_revision`) the node's liveness are one statement."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PEERS_CHANNEL = "nodus_peers"

_BUMP = (
    "UPDATE nodes SET revision = revision + 1 WHERE id = :id{condition} "
    "RETURNING revision, pg_notify(:channel, id || ':' || revision)"
)
_BUMP_ANY = text(_BUMP.format(condition=""))
_BUMP_LIVE = text(_BUMP.format(condition=" AND deleted_at IS NULL"))


async def bump_revision(session: AsyncSession, node_id: str) -> int:
    """Increments the node's revision and announces `<node_id>:<revision>` on commit."""
    revision = await bump_live_revision(session, node_id, include_deleted=True)
    if revision is None:
        raise LookupError(f"no node {node_id}")
    return revision


async def bump_live_revision(
    session: AsyncSession, node_id: str, *, include_deleted: bool = False
) -> int | None:
    """`bump_revision` for a node that is not deleted; None (nothing bumped) if it is gone."""
    row = (
        await session.execute(
            _BUMP_ANY if include_deleted else _BUMP_LIVE,
            {"id": node_id, "channel": PEERS_CHANNEL},
        )
    ).one_or_none()
    return None if row is None else int(row[0])
