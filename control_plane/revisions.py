"""Each node's desired peer set has a monotonic revision. Whatever changes the set (a config
issued or revoked, a subscription lapsing) bumps it in the same transaction; the NOTIFY is
delivered to every replica only when that transaction commits, so no listener ever sees a
revision before its data.

A bump takes the node's row lock until commit, so concurrent changes on one node queue on it.
The hot path, config issuance, therefore bumps at commit: it inserts a `RevisionBump` row, and a
deferred constraint trigger (migration 0007) bumps the revision, sends the NOTIFY and deletes the
row inside the COMMIT, so the lock lasts only for the commit itself, not for a client round trip.
The rare changes (revocations, lapses, node edits) call `bump_revision`, which also tells them
the new revision."""

from __future__ import annotations

from sqlalchemy import BigInteger, Identity, String, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base

PEERS_CHANNEL = "nodus_peers"


class RevisionBump(Base):
    """A bump of `node_id`'s revision, done (and the row deleted) when its transaction commits."""

    __tablename__ = "revision_bumps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(66))


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
