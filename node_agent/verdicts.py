"""The agent's verdict on its node: one reason code and a line on what to do, for `/health`,
`nodus-agent status` and the log. A node marked down with no reason is useless to its operator;
every code here says what to fix.

Levels: `ok` (serving), `warn` (serving, but something will cost subscribers or score), `fail`
(not serving as it should). The first matching problem wins, most serious first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["ok", "warn", "fail"]

FIXES: dict[str, tuple[Level, str]] = {
    "ok": ("ok", "nothing to do"),
    "starting": ("warn", "wait for the first sync; if it lasts, see control_plane_unreachable"),
    "interface_missing": (
        "fail",
        "let `nodus-agent run` create it (network.manage = true, the default), or create it: "
        "`ip link add <if> type wireguard` or `wireguard-go <if>`, then restart the agent",
    ),
    "apply_failed": (
        "fail",
        "read the cause in the log or `nodus-agent status`; the agent retries at every "
        "expiry.check_seconds",
    ),
    "forwarding_off": (
        "fail",
        "subscribers get no internet: `sysctl -w net.ipv4.ip_forward=1 "
        "net.ipv6.conf.all.forwarding=1`, or let the agent manage the network",
    ),
    "nat_missing": (
        "fail",
        "subscribers get no internet: give `--egress-interface IF` (no default route was "
        "found), install nftables, or `--no-nat` if the node's pools are routed to it",
    ),
    "control_plane_refused": (
        "fail",
        "the control plane refuses this agent: check the node is Active on-chain and its "
        "agent is this key (`nodus node status <id>`, `nodus node set-agent`)",
    ),
    "control_plane_unreachable": (
        "warn",
        "serving the last known set (fail-static); check control_plane.url, DNS and the "
        "route to it",
    ),
    "revision_refused": (
        "warn",
        "the control plane sent a peer set that failed validation; check `nodus-agent pools` "
        "pinned this node's pools, then report it",
    ),
    "no_handshakes": (
        "warn",
        "peers are configured but none shook hands recently: open the WireGuard UDP port in "
        "the firewall and check the endpoint's host resolves to this machine",
    ),
    "no_peers": ("ok", "nothing to do: no subscriber has a config on this node yet"),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    level: Level
    reason: str
    detail: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {
            "verdict": self.level,
            "reason": self.reason,
            "detail": self.detail,
            "fix": self.fix,
        }


def verdict(reason: str, detail: str = "") -> Verdict:
    level, fix = FIXES[reason]
    return Verdict(level, reason, detail, fix)


@dataclass(slots=True)
class Facts:
    """What the agent knows when it judges (agent.py fills it)."""

    applied_revision: int | None = None
    apply_error: str | None = None
    refused: str | None = None  # the control plane refuses us (e.g. node not Active)
    unreachable: str | None = None  # network errors, 5xx
    rejected: str | None = None  # a revision failed validation
    network: dict[str, str] = field(default_factory=dict)  # reason code -> detail
    peers: int = 0
    recently_shaken: int | None = None  # peers with a recent handshake (None: not measured)


def judge(facts: Facts) -> Verdict:
    if "interface_missing" in facts.network:
        return verdict("interface_missing", facts.network["interface_missing"])
    if facts.apply_error is not None:
        if "No such device" in facts.apply_error:
            return verdict("interface_missing", facts.apply_error)
        return verdict("apply_failed", facts.apply_error)
    for reason in ("forwarding_off", "nat_missing"):
        if reason in facts.network:
            return verdict(reason, facts.network[reason])
    if facts.refused is not None:
        return verdict("control_plane_refused", facts.refused)
    if facts.applied_revision is None:
        return verdict("starting", "no peer set applied yet")
    if facts.unreachable is not None:
        return verdict("control_plane_unreachable", facts.unreachable)
    if facts.rejected is not None:
        return verdict("revision_refused", facts.rejected)
    if facts.peers == 0:
        return verdict("no_peers")
    if facts.recently_shaken == 0:
        return verdict("no_handshakes", f"{facts.peers} peer(s), none active")
    return verdict("ok", f"{facts.peers} peer(s)")
