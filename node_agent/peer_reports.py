"""What the agent's periodic per-peer report to the control plane (POST /v1/agent/metrics)
carries: only the peers whose handshake or counters moved since the last delivered report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from node_agent.backends import PeerStats

INT64_MAX = 2**63 - 1  # the control plane stores counters as BIGINT
FUTURE_TOLERANCE_SECONDS = 300

Seen = tuple[float | None, int, int]  # handshake, rx, tx
Memo = dict[tuple[str, str], Seen]  # (protocol, peer key) -> what was last delivered


def changed_peers(
    stats: list[tuple[str, PeerStats]], reported: Memo, now: datetime
) -> tuple[list[dict[str, Any]], Memo]:
    """The entries of peers whose handshake or counters moved since `reported`, and the memo
    to keep once they are delivered."""
    memo: Memo = {}
    entries: list[dict[str, Any]] = []
    for protocol, peer in stats:
        handshake = peer.last_handshake_at
        if handshake is not None and handshake > now.timestamp() + FUTURE_TOLERANCE_SECONDS:
            handshake = None  # a clock gone wrong; the control plane refuses the future
        seen = (handshake, min(peer.rx_bytes, INT64_MAX), min(peer.tx_bytes, INT64_MAX))
        memo[(protocol, peer.key)] = seen
        if reported.get((protocol, peer.key), (None, 0, 0)) == seen:
            continue
        identity = "public_key" if protocol == "wireguard" else "cert_serial"
        entries.append(
            {
                identity: peer.key,
                "last_handshake_at": None
                if handshake is None
                else datetime.fromtimestamp(handshake, UTC).isoformat(),
                "rx_bytes": seen[1],
                "tx_bytes": seen[2],
            }
        )
    return entries, memo
