"""The agent feed's rules: when a poll answers, what the desired peer set is, what a report
stores. Raises AppErrors; never commits (the request owns the transaction)."""

from __future__ import annotations

import ipaddress
import random
import uuid
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.agent import repository
from control_plane.agent.feed import FeedBusy, PeerFeed
from control_plane.agent.models import Heartbeat
from control_plane.agent.repository import MetricRow, PeerRow
from control_plane.agent.schemas import (
    HeartbeatIn,
    HeartbeatOut,
    MetricsIn,
    MetricsOut,
    NodePools,
    OpenVpnPeer,
    PeerSet,
    RemovedOpenVpnPeer,
    RemovedPeer,
    RemovedWireGuardPeer,
    WireGuardPeer,
)
from control_plane.db import unit_of_work
from control_plane.errors import NotFound, RateLimited, ShuttingDown
from control_plane.jobs import Services
from control_plane.tunnel.addresses import Pools

# An unchanged long-poll is answered after a random part of the last quarter of `wait`, so
# agents that parked together (a replica's restart, a ramp) come back spread out instead of as a
# herd that re-checks every token at once (P8 in bench/report.md; Consul spreads its blocking
# queries the same way).
LONG_POLL_SPREAD = 0.25


def spread_wait(wait: float, rng: random.Random) -> float:
    """How long this poll parks: between (1 - LONG_POLL_SPREAD) * wait and wait."""
    return wait * (1.0 - LONG_POLL_SPREAD * rng.random())


@dataclass(frozen=True, slots=True)
class DiffAsk:
    """The agent can apply a diff (`diff=true`); `history`: the one its set at `since` is from."""

    history: uuid.UUID | None


async def peer_set(
    feed: PeerFeed,
    services: Services,
    node_id: str,
    since: int | None,
    wait: int,
    diff: DiffAsk | None = None,
    rng: random.Random | None = None,
) -> PeerSet:
    """The node's desired set if its revision is not `since` (or `since` is absent); otherwise
    waits up to `wait` seconds for it to move (spread_wait: at least 3/4 of it), and answers
    `changed: false` if it did not.
    With `diff`, a changed answer is a diff against the set at `since` when the peer log can
    give an exact one (revisions.py), else the whole set; both carry the history.

    A poll whose revision is still `since` is answered from the feed's memory: no SQL at all
    (while the feed is live). A `since` ahead of the revision we know is checked against the
    database once (this replica may not have heard of the change yet); if the database is behind
    it too (restored, or a confused agent) the agent gets the full set to start over from.
    No session is taken from the request: only a full set or a diff opens one, of its own."""
    if since is not None:
        revision = await _known_revision(feed, node_id)
        if revision < since:
            revision = await _database_revision(feed, node_id)
        if revision == since and wait > 0:
            try:
                parked = spread_wait(wait, rng or random.SystemRandom())
                await feed.wait_past(node_id, since, parked)
            except FeedBusy as exc:
                raise RateLimited(str(exc), headers={"Retry-After": "5"}) from exc
            if feed.closing:  # woken by shutdown: another replica answers the retry
                raise ShuttingDown()
            revision = await _known_revision(feed, node_id)
        if revision == since:
            return PeerSet(revision=since, changed=False, peers=None)
        if diff is not None and diff.history is not None:
            answer = await _diff(feed, services, node_id, since, diff.history)
            if answer is not None:
                return answer
    return await _full_set(feed, services, node_id, with_history=diff is not None)


async def _known_revision(feed: PeerFeed, node_id: str) -> int:
    """From memory; a node the map does not know (or a feed that is reconnecting) is read from
    the database, once: the answer is remembered."""
    revision = feed.revision(node_id)
    if revision is None:
        revision = await _database_revision(feed, node_id)
    return revision


async def _database_revision(feed: PeerFeed, node_id: str) -> int:
    # Its own short transaction, never the request's: the poll may wait up to a minute next,
    # and must not hold a pooled connection while it does.
    async with unit_of_work(feed.sessions) as short:
        node = await repository.node_revision(short, node_id)
    if node is None:
        raise NotFound("no such node")
    feed.observe(node_id, node.revision)
    return node.revision


async def _diff(
    feed: PeerFeed, services: Services, node_id: str, since: int, history: uuid.UUID
) -> PeerSet | None:
    """The diff since `since`, or None when only the whole set is exact."""
    async with feed.reads, unit_of_work(feed.sessions) as session:
        now = await services.clock.now(services.chain, services.settings.chain_clock_seconds)
        found = await repository.peer_diff(session, node_id, since, history, now)
    if found is None:
        raise NotFound("no such node")
    feed.observe(node_id, found.revision)
    if found.touched is None:
        return None
    peers = [_peer(t.peer) for t in found.touched if t.peer is not None]
    kept = {
        (p.protocol, p.public_key if isinstance(p, WireGuardPeer) else p.cert_serial) for p in peers
    }
    removed: dict[tuple[str, str], RemovedPeer] = {}
    for touched in found.touched:
        if touched.peer is None and touched.identity is not None and touched.identity not in kept:
            protocol, identity = touched.identity
            removed[touched.identity] = (
                RemovedWireGuardPeer(public_key=identity)
                if protocol == "wireguard"
                else RemovedOpenVpnPeer(cert_serial=identity)
            )
    return PeerSet(
        revision=found.revision,
        changed=True,
        peers=peers,
        history=found.history,
        diff_since=since,
        removed=list(removed.values()),
    )


async def _full_set(
    feed: PeerFeed, services: Services, node_id: str, *, with_history: bool = False
) -> PeerSet:
    # The revision is read before the peers. Under READ COMMITTED each statement sees the
    # latest commits, so the peers can only be newer than the revision (the agent then gets them
    # again on its next poll), never older (which would hide a change behind its revision).
    async with feed.reads, unit_of_work(feed.sessions) as session:
        node = await repository.node_revision(session, node_id)
        if node is None:
            raise NotFound("no such node")
        # Lapsed means lapsed on the chain's clock (a dev chain can run ahead of the wall).
        now = await services.clock.now(services.chain, services.settings.chain_clock_seconds)
        rows = [] if node.deleted else await repository.desired_peers(session, node_id, now)
    feed.observe(node_id, node.revision)
    peers = [_peer(row) for row in rows]
    if with_history:
        return PeerSet(revision=node.revision, changed=True, peers=peers, history=node.history)
    return PeerSet(revision=node.revision, changed=True, peers=peers)


def _peer(row: PeerRow) -> WireGuardPeer | OpenVpnPeer:
    allowed_ips = [
        f"{ipaddress.ip_interface(row.ipv4).ip}/32",
        f"{ipaddress.ip_interface(row.ipv6).ip}/128",
    ]
    expires_at = row.expires_at.astimezone(UTC)
    if row.protocol == "openvpn":
        assert row.cert_serial is not None  # the query selects only peers with an identity
        return OpenVpnPeer(
            cert_serial=row.cert_serial, allowed_ips=allowed_ips, expires_at=expires_at
        )
    assert row.public_key is not None
    return WireGuardPeer(public_key=row.public_key, allowed_ips=allowed_ips, expires_at=expires_at)


async def node_pools(session: AsyncSession, node_id: str) -> NodePools:
    pools = await repository.live_node_pools(session, node_id)
    if pools is None:
        raise NotFound("no such node")
    whole = Pools.of(pools[0], pools[1])
    wireguard, openvpn = whole.for_protocol("wireguard"), whole.for_protocol("openvpn")
    return NodePools(
        node_id=node_id,
        ipv4_pool=pools[0],
        ipv6_pool=pools[1],
        wireguard_ipv4_pool=str(wireguard.ipv4),
        wireguard_ipv6_pool=str(wireguard.ipv6),
        openvpn_ipv4_pool=str(openvpn.ipv4),
        openvpn_ipv6_pool=str(openvpn.ipv6),
    )


async def record_heartbeat(
    session: AsyncSession, node_id: str, report: HeartbeatIn
) -> HeartbeatOut:
    revision = await repository.record_heartbeat_time(session, node_id)
    if revision is None:
        raise NotFound("no such node")
    await repository.add_heartbeat(session, Heartbeat(node_id=node_id, **report.model_dump()))
    return HeartbeatOut(revision=revision)


async def record_metrics(session: AsyncSession, node_id: str, report: MetricsIn) -> MetricsOut:
    """Stores one row per reported peer that is a config on this node (live or revoked: a
    report can race a revocation, and traffic served before it is real). Other entries are
    ignored and counted, so one stale peer does not lose the whole report."""
    if not await repository.live_node_exists(session, node_id):
        raise NotFound("no such node")
    if not report.peers:
        return MetricsOut(accepted=0, ignored=0)
    rows = [
        MetricRow(
            public_key=p.public_key,
            cert_serial=p.cert_serial,
            last_handshake_at=p.last_handshake_at,
            rx_bytes=p.rx_bytes,
            tx_bytes=p.tx_bytes,
        )
        for p in report.peers
    ]
    accepted = await repository.add_peer_metrics(session, node_id, rows)
    return MetricsOut(accepted=accepted, ignored=len(rows) - accepted)
