"""Each peer carries its subscriber's expiry: the agent drops it then, with or without the
control plane. These helpers answer "who is still live" and "when is the next expiry"."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from node_agent.peers import Peer


def live_peers(peers: Iterable[Peer], now: datetime) -> tuple[Peer, ...]:
    """The peers whose expiry is still ahead of `now` (an expiry equal to now has passed)."""
    return tuple(peer for peer in peers if peer.expires_at > now)


def expired_peers(peers: Iterable[Peer], now: datetime) -> tuple[Peer, ...]:
    return tuple(peer for peer in peers if peer.expires_at <= now)


def next_expiry(peers: Iterable[Peer], now: datetime) -> datetime | None:
    """The earliest expiry still ahead of `now`; None if there is none."""
    return min((peer.expires_at for peer in peers if peer.expires_at > now), default=None)
