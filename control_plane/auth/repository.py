"""Every query of the auth domain: sign-in nonces, agent challenges, API keys, and the one read
of the indexer's node mirror that roles need. Nothing here commits.

Expiry is judged by the database's clock (`now()`), the one clock every replica shares."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.models import AgentChallenge, ApiKey, AuthNonce
from control_plane.indexer.models import ChainNode

# Expired rows are purged a bounded batch at a time, skipping rows another request holds, so the
# purge never waits and never grows with the backlog.
PURGE_BATCH = 100


@dataclass(frozen=True, slots=True)
class OpenChallenge:
    challenge: str
    expires_at: datetime


# --- sign-in nonces ---------------------------------------------------------------------------


async def purge_expired_nonces(session: AsyncSession) -> None:
    expired = (
        select(AuthNonce.nonce)
        .where(AuthNonce.expires_at <= func.now())
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(AuthNonce)
        .where(AuthNonce.nonce.in_(expired.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


async def insert_nonce(session: AsyncSession, nonce: str, ttl: timedelta) -> datetime:
    """Stores a fresh nonce; answers when it expires."""
    statement = (
        insert(AuthNonce)
        .values(nonce=nonce, expires_at=func.now() + ttl)
        .returning(AuthNonce.expires_at)
    )
    return (await session.execute(statement)).scalar_one()


async def consume_nonce(session: AsyncSession, nonce: str) -> bool:
    """Deletes the nonce if it exists and has not expired; True if this call took it.

    One statement, so two logins racing with one nonce cannot both succeed: the second waits
    for the first's row lock and then finds nothing to delete."""
    statement = (
        delete(AuthNonce)
        .where(AuthNonce.nonce == nonce, AuthNonce.expires_at > func.now())
        .returning(AuthNonce.nonce)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


# --- roles ------------------------------------------------------------------------------------


async def operates_active_node(session: AsyncSession, address: str) -> bool:
    """Whether `address` (lower-case, as the indexer stores it) operates a node Active on-chain."""
    statement = select(exists().where(ChainNode.operator == address, ChainNode.active.is_(True)))
    return bool((await session.execute(statement)).scalar_one())


# The agent key lower-cased and, for a node that is not Active, its status, computed by the
# database: building the snapshot in Python cost ~60 ms per 10,000 nodes (P8's profile).
_CHAIN_NODE_STATES = select(
    ChainNode.node_id,
    func.lower(ChainNode.agent),
    case((and_(ChainNode.status == "active", ChainNode.active), None), else_=ChainNode.status),
)


async def chain_node_states(session: AsyncSession) -> dict[str, tuple[str, str | None]]:
    """Every node the indexer mirrors: its id -> (agent key in lower case, None if it is Active
    on-chain else its NodeRegistry status), for the node-token snapshot
    (auth/node_credentials.py)."""
    rows = await session.execute(_CHAIN_NODE_STATES)
    return {node_id: (agent, unusable) for node_id, agent, unusable in rows}


# --- node-agent challenges --------------------------------------------------------------------


async def purge_expired_challenges(session: AsyncSession) -> None:
    expired = (
        select(AgentChallenge.node_id)
        .where(AgentChallenge.expires_at <= func.now())
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(AgentChallenge)
        .where(AgentChallenge.node_id.in_(expired.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


async def open_challenge(
    session: AsyncSession, node_id: str, fresh_challenge: str, ttl: timedelta, reuse_for: timedelta
) -> OpenChallenge | None:
    """Opens `fresh_challenge` for the node unless it has a challenge still valid for at least
    `reuse_for`; answers the new challenge, or None when the existing one stays (then read it
    with `current_challenge`: this statement has locked it for the transaction)."""
    fresh = insert(AgentChallenge).values(
        node_id=node_id, challenge=fresh_challenge, expires_at=func.now() + ttl
    )
    statement = fresh.on_conflict_do_update(
        index_elements=[AgentChallenge.node_id],
        set_={"challenge": fresh.excluded.challenge, "expires_at": fresh.excluded.expires_at},
        where=AgentChallenge.expires_at < func.now() + reuse_for,
    ).returning(AgentChallenge.challenge, AgentChallenge.expires_at)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else OpenChallenge(row.challenge, row.expires_at)


async def current_challenge(session: AsyncSession, node_id: str) -> OpenChallenge | None:
    statement = select(AgentChallenge.challenge, AgentChallenge.expires_at).where(
        AgentChallenge.node_id == node_id, AgentChallenge.expires_at > func.now()
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else OpenChallenge(row.challenge, row.expires_at)


async def consume_challenge(session: AsyncSession, node_id: str) -> str | None:
    """Deletes the node's unexpired challenge and answers its text (None if there is none).
    Atomic like `consume_nonce`: of two logins racing on one challenge, one gets it."""
    statement = (
        delete(AgentChallenge)
        .where(AgentChallenge.node_id == node_id, AgentChallenge.expires_at > func.now())
        .returning(AgentChallenge.challenge)
    )
    return (await session.execute(statement)).scalar_one_or_none()


# --- API keys ---------------------------------------------------------------------------------


async def insert_api_key(
    session: AsyncSession, owner: str, name: str, prefix: str, secret_hash: bytes
) -> ApiKey | None:
    """Stores a key; None if its prefix is taken (the caller draws another)."""
    statement = (
        insert(ApiKey)
        .values(id=uuid.uuid4(), owner=owner, name=name, prefix=prefix, secret_hash=secret_hash)
        .on_conflict_do_nothing(index_elements=[ApiKey.prefix])
        .returning(ApiKey)
    )
    return (await session.scalars(statement)).one_or_none()


async def count_live_api_keys(session: AsyncSession, owner: str) -> int:
    statement = (
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.owner == owner, ApiKey.revoked_at.is_(None))
    )
    return int((await session.execute(statement)).scalar_one())


async def live_api_keys(session: AsyncSession, owner: str) -> Sequence[ApiKey]:
    statement = (
        select(ApiKey)
        .where(ApiKey.owner == owner, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return (await session.scalars(statement)).all()


async def revoke_api_key(session: AsyncSession, owner: str, key_id: uuid.UUID) -> bool:
    """Revokes the owner's live key `key_id`; False if the owner has no such live key."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.owner == owner, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def api_key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return (await session.scalars(select(ApiKey).where(ApiKey.prefix == prefix))).one_or_none()


async def mark_api_key_used(session: AsyncSession, key_id: uuid.UUID, every: timedelta) -> None:
    """Records use at most once per `every`, and never waits: a request that finds the row
    locked by another (a long poll, say) skips the update instead of queueing behind it."""
    stale = (
        select(ApiKey.id)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < func.now() - every),
        )
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id.in_(stale.scalar_subquery()))
        .values(last_used_at=func.now())
        .execution_options(synchronize_session=False)
    )
