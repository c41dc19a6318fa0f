"""status.json: what `nodus-agent status` shows of the running agent (agent.py writes it at
each change)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from node_agent import __version__
from node_agent.expiry import next_expiry
from node_agent.peers import protocol_of

if TYPE_CHECKING:
    from node_agent.agent import Agent


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def status_document(agent: Agent, *, running: bool) -> dict[str, Any]:
    upcoming = next_expiry(agent.applied, agent.clock())
    return {
        "running": running,
        "pid": os.getpid(),
        "version": __version__,
        "node_id": agent.config.node_id,
        "control_plane": agent.config.control_plane.url,
        "started_at": _iso(agent.started_at),
        "updated_at": _iso(agent.clock()),
        "health": agent.health()[1]["status"],
        **agent.verdict().as_dict(),
        "revision": agent.applied_revision,
        "applied_at": _iso(agent.applied_at),
        "peers": len(agent.applied),
        "peers_by_protocol": {
            protocol: sum(1 for peer in agent.applied if protocol_of(peer) == protocol)
            for protocol in ("wireguard", "openvpn")
        },
        "next_expiry": _iso(upcoming),
        "last_sync_at": _iso(agent.last_sync_at),
        "fail_static": agent.fail_static,
        "unreachable_since": _iso(agent.unreachable_since),
        "unreachable_reason": agent.unreachable_reason,
        "rejected": None
        if agent.rejected is None
        else {"revision": agent.rejected[0], "reason": agent.rejected[1]},
        "apply_error": agent.apply_error,
        "last_heartbeat_at": _iso(agent.last_heartbeat_at),
        "last_metrics_at": _iso(agent.last_metrics_at),
        "backends": sorted(agent.backends),
        "errors": list(agent.errors),
    }
