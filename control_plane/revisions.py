"""Each node's desired peer set has a monotonic revision. Whatever changes the set (a config
issued or revoked, a subscription lapsing) bumps it in the same transaction; the NOTIFY is
delivered to every replica only when that transaction commits, so no listener ever sees a
revision before its data.

A bump takes the node's row lock until commit, so concurrent changes on one node queue on it.
The hot path, config issuance, therefore bumps at commit: it inserts a `RevisionBump` row, and a
deferred constraint trigger (migrations 0007, 0009) bumps the revision, sends the NOTIFY and
deletes the row inside the COMMIT, so the lock lasts only for the commit itself, not for a client
round trip. The rare changes (revocations, lapses, node edits) call `bump_revision`, which also
tells them the new revision.

The peer log (migration 0009), for the feed's diffs: each bump records in `PeerChange` the
configs whose place in the set it may have changed (a bump that does not itemize them starts a
new `peer_history` instead, so no diff spans it). A diff since revision S at revision R is then
exactly the current state of the configs logged in (S, R]: every other config is as it was at S
(a lapse by the clock alone is the exception the agents already handle: each peer carries its
expiry, and the expiry job's bump logs the lapsed configs within a minute). The log keeps the
last `HISTORY_REVISIONS` revisions per node; `peer_log_from` says where it starts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import BigInteger, Identity, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base

PEERS_CHANNEL = "nodus_peers"
HISTORY_REVISIONS = 1024  # revisions of peer log kept per node (migration 0009 compacts)


class RevisionBump(Base):
    """A bump of `node_id`'s revision, done (and the row deleted) when its transaction commits;
    `config_id` is the config it logs (None: a new history)."""

    __tablename__ = "revision_bumps"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(66))
    config_id: Mapped[uuid.UUID | None]


class PeerChange(Base):
    """Revision `revision` of `node_id` may have changed config `config_id`'s place in the set."""

    __tablename__ = "peer_changes"

    node_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    config_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


_BUMP = text("SELECT nodus_bump_peers(:id, :configs, :reset)").bindparams(
    bindparam("configs", type_=ARRAY(UUID(as_uuid=True)))
)


async def bump_revision(
    session: AsyncSession, node_id: str, changed: Sequence[uuid.UUID] | None = None
) -> int:
    """Increments the node's revision and announces `<node_id>:<revision>` on commit (one
    statement). `changed`: the configs whose place in the set this change may move (their ids
    go to the peer log); None when the change is not itemized (a new history: agents that ask
    for a diff get the whole set once)."""
    revision = await session.scalar(
        _BUMP,
        {
            "id": node_id,
            "configs": None if changed is None else sorted(set(changed)),
            "reset": changed is None,
        },
    )
    if revision is None:
        raise LookupError(f"no node {node_id}")
    return int(revision)
