"""A subscriber's expiry, read from the SubscriptionManager contract (the truth), so a user who
just paid never waits for the indexer. Active answers are cached for `expiry_cache_seconds` in the
app's `ChainReadCache`; "never paid" and "lapsed" are always read afresh (never cached), so a
payment counts the moment its receipt exists. An unreachable chain raises ChainUnavailable
(503), never a guess.

The expiry recorded in `subscribers` drives the nodes' desired peer sets (a live config belongs
in its node's set while its subscriber's expiry is in the future), so every change that moves a
subscriber across "now" bumps the revisions of the nodes holding its live configs:
- a renewal of a lapsed subscriber, at once (`record_expiry` says so, and its callers, the
  indexer and every direct read, call `bump_nodes_of`);
- a lapse, within a minute, by the `expire_lapsed` job, exactly once per expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.caches import ChainReadCache
from control_plane.chain.client import ChainReader
from control_plane.jobs import Services
from control_plane.revisions import bump_revision
from control_plane.subscriptions.repository import SubscriberRepository

log = logging.getLogger("nodus.expiry")

NEVER = datetime.fromtimestamp(0, UTC)
"""The expiry of a subscriber none of whose payments remain on the chain (after a reorg)."""

LAPSES_PER_RUN = 1_000


async def reconcile_direct_reads(
    session: AsyncSession, chain: ChainReader, now: datetime, *, grace_seconds: float = 120
) -> list[str]:
    """Expiries recorded from direct chain reads that the indexer has not confirmed for
    `grace_seconds` are read again from the chain (the truth) and corrected; returns the
    subscribers whose expiry changed (their nodes must be bumped)."""
    stale = await SubscriberRepository(session).ahead_of_payments(
        chain.chain_id, now - timedelta(seconds=grace_seconds), limit=100
    )
    changed = []
    for address in stale:
        seconds = await chain.subscription_expiry(address)
        expires_at = datetime.fromtimestamp(seconds, UTC) if seconds else NEVER
        if await record_expiry(session, address, expires_at, now, only_grow=False):
            changed.append(address)
    if changed:
        log.warning("expiries corrected from the chain", extra={"subscribers": len(changed)})
    return changed


async def current_expiry(
    session: AsyncSession,
    chain: ChainReader,
    address: str,
    max_age: float,
    reads: ChainReadCache,
    *,
    now: datetime,
) -> datetime | None:
    """The subscriber's expiry; None if the address never paid. Active per the indexer's
    mirror (`subscribers`, the expiry job's input): that, with no chain read (so an RPC outage
    does not stop a paid subscriber). Otherwise from the chain, recorded in `subscribers`: an
    active expiry may come from a read up to `max_age` seconds old; "never paid" and "lapsed"
    (at `now`, the chain-aware clock: a dev chain's clock can run ahead of the wall's) are
    always a fresh read, never cached. A renewal of a lapsed subscriber bumps its nodes'
    revisions in this transaction."""
    mirrored = await SubscriberRepository(session).get(address.lower())
    if mirrored is not None and mirrored.expires_at > now:
        return mirrored.expires_at
    at = now.timestamp()
    seconds = await reads.expiry(chain, address, max_age, now=at)
    if seconds == 0:
        return None
    expires_at = datetime.fromtimestamp(seconds, UTC)
    # A cached read may be a few seconds old: it can add what the indexer has not seen yet,
    # never take back what it has (on-chain expiries only grow; reorgs are the indexer's).
    if await record_expiry(session, address, expires_at, datetime.now(UTC), only_grow=True):
        await bump_nodes_of(session, [address.lower()])
    return expires_at


async def record_expiry(
    session: AsyncSession,
    address: str,
    expires_at: datetime,
    now: datetime,
    *,
    only_grow: bool,
) -> bool:
    """Records the subscriber's expiry (`only_grow`: never lower it); a row it changes stays
    locked until the transaction ends. True if the expiry changed: every peer of the subscriber
    carries its expiry in the node's feed (agents remove peers on time by themselves), so any
    change, a renewal, a lapsed subscriber coming back or a reorg taking a payment back, must
    reach the agents; the caller bumps those nodes (`bump_nodes_of`). A lapse that happens by
    the clock alone is `expire_lapsed`'s to announce; one this change makes (a reorg lowering
    the expiry into the past) is announced by the caller's bump, so it is marked processed."""
    address = address.lower()
    repository = SubscriberRepository(session)
    if only_grow:  # the common case, a read of what is already known: no lock needed
        known = await repository.get(address)
        if known is not None and known.expires_at >= expires_at:
            return False
    state = await repository.get(address, lock=True)
    if state is None:
        if await repository.create(address, expires_at):
            return True
        state = await repository.get(address, lock=True)  # created concurrently
        if state is None:
            raise RuntimeError(f"subscriber {address} vanished while being recorded")
    old = state.expires_at
    new = max(old, expires_at) if only_grow else expires_at
    if new == old:
        return False
    await repository.set_expiry(address, new)
    if new <= now:
        await repository.mark_lapses_processed([address])
    return True


async def record_grown_expiries(
    session: AsyncSession, expiries: Mapping[str, datetime], now: datetime
) -> list[str]:
    """`record_expiry(..., only_grow=True)` for many subscribers in a few statements (the
    indexer's chunk of payments: one at a time, three round trips each, 2,000 new subscribers
    took 8 of a catch-up's 9 s). Returns the subscribers whose expiry changed, sorted."""
    wanted = {address.lower(): expires_at for address, expires_at in expiries.items()}
    repository = SubscriberRepository(session)
    # The common case, payments already known: read without locking.
    known = await repository.expiries(sorted(wanted))
    candidates = sorted(a for a, e in wanted.items() if a not in known or known[a] < e)
    if not candidates:
        return []
    locked = await repository.expiries(candidates, lock=True)
    created = await repository.create_many({a: wanted[a] for a in candidates if a not in locked})
    raced = [a for a in candidates if a not in locked and a not in created]
    if raced:  # created by another transaction since the read: lock and raise them too
        locked.update(await repository.expiries(raced, lock=True))
        missing = set(raced) - set(locked)
        if missing:
            raise RuntimeError(f"subscribers vanished while being recorded: {sorted(missing)}")
    raised = {a: wanted[a] for a, old in locked.items() if old < wanted[a]}
    await repository.set_expiries(raised)
    lapsed = sorted(a for a, expires_at in raised.items() if expires_at <= now)
    if lapsed:
        await repository.mark_lapses_processed(lapsed)
    return sorted(created | set(raised))


async def bump_nodes_of(session: AsyncSession, subscribers: Sequence[str]) -> list[str]:
    """Bumps, once each, the revision of every node holding a live config of `subscribers`,
    logging those configs (their expiry, or their place in the set, changed); returns the
    nodes."""
    configs = await SubscriberRepository(session).live_configs_by_node(subscribers)
    nodes = list(configs)
    for node_id in nodes:  # sorted: concurrent bumpers lock nodes in the same order
        await bump_revision(session, node_id, configs[node_id])
    if nodes:
        log.info("peer sets changed", extra={"subscribers": len(subscribers), "nodes": len(nodes)})
    return nodes


async def expire_lapsed(services: Services, session: AsyncSession) -> None:
    """The expiry job: each subscriber whose expiry has passed since the last run leaves its
    nodes' desired sets, once: every node holding one of its live configs gets one revision
    bump (the agent's next poll no longer sees the peer), and the lapse is marked processed."""
    # In line (a job, not a request), and it moves the replica's clock with it: the feed that
    # the bump below wakes must judge the lapse by the same head, not a lead up to a second old.
    now = await services.clock.now(services.chain, 0)
    repository = SubscriberRepository(session)
    lapsed = await repository.lock_unprocessed_lapses(now, LAPSES_PER_RUN)
    if not lapsed:
        return
    await repository.mark_lapses_processed(lapsed)
    nodes = await bump_nodes_of(session, lapsed)
    log.info("subscriptions lapsed", extra={"subscribers": len(lapsed), "nodes": len(nodes)})
