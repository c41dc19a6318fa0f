"""The node score: a pure, deterministic, versioned function of what was measured in an epoch.

docs/scoring.md states the formula; this module is its reference implementation. Everything a
score depends on is in `NodeMetrics`, and every number that leaves this module is an integer in
parts per million (ppm, 1_000_000 = 1.0), so anyone can recompute scores, allocations and the
Merkle root from the published epoch data and get the same bits (no float reaches an amount).

What a node says about itself cannot raise its score on its own:
- uptime and latency come only from probers' signed samples, never from heartbeats;
- handshakes and traffic count only for peers that are live configs of the node with a paying
  subscriber (the caller filters them); traffic is log-scaled and capped per peer and per node.

Two versions are implemented: `nodus-score/2` scores every new epoch; `nodus-score/1` is kept
only so epochs published under it still verify (`nodus rewards verify`). Version 2 differs in:
- uptime counts a prober's rounds of the whole epoch (every round it ran, on any node), so a node
  that appears late earns only the share of the epoch it answered; handshake and latency are
  scaled by the share of the epoch's rounds in which the node was probed at all (its presence);
- handshakes and traffic count paying wallets, once each however many devices they have, and
  never the node's own operator or agent (the caller tallies them);
- each node's allocation is capped at `stake_cap_multiple` times its stake (allocation.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FORMULA_V1 = "nodus-score/1"
FORMULA_V2 = "nodus-score/2"
FORMULA_VERSION = FORMULA_V2  # what new epochs are scored with
VERSIONS = (FORMULA_V1, FORMULA_V2)
PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class Weights:
    """Percent weights of the four components (they sum to 100)."""

    uptime: int = 50
    handshake: int = 15
    latency: int = 15
    traffic: int = 20

    def __post_init__(self) -> None:
        values = (self.uptime, self.handshake, self.latency, self.traffic)
        if any(v < 0 for v in values) or sum(values) != 100:
            raise ValueError("weights are non-negative percentages summing to 100")


@dataclass(frozen=True, slots=True)
class FormulaParams:
    """Every constant of the formula (published with each epoch's data)."""

    weights: Weights = field(default_factory=Weights)
    # Latency: full marks at or below `latency_good_us`, none at or above `latency_bad_us`,
    # linear in between (median probe round trip, microseconds).
    latency_good_us: int = 50_000
    latency_bad_us: int = 1_000_000
    # A peer's handshake is recent if it happened at most this long before the report.
    handshake_fresh_seconds: int = 180
    # Traffic, as an average rate over the epoch (bytes per second): log-scaled from
    # `traffic_unit_bps`, full marks at `traffic_full_bps` (100 Mbit/s); one peer counts for at
    # most `traffic_peer_cap_bps` (20 Mbit/s), so one subscription cannot carry a node.
    traffic_unit_bps: int = 10_000
    traffic_full_bps: int = 12_500_000
    traffic_peer_cap_bps: int = 2_500_000
    # Smoothing: smoothed = (alpha * this epoch + (1 - alpha) * previous smoothed), alpha =
    # ewma_num / ewma_den; a node's first epoch starts at its raw score.
    ewma_num: int = 3
    ewma_den: int = 10
    # Version 2: a node's allocation in one epoch is at most this many times its stake (what a
    # misbehaving node risks bounds what it can take; the rest stays in the pool).
    stake_cap_multiple: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.latency_good_us < self.latency_bad_us:
            raise ValueError("0 < latency_good_us < latency_bad_us")
        if not 0 < self.traffic_unit_bps < self.traffic_full_bps:
            raise ValueError("0 < traffic_unit_bps < traffic_full_bps")
        if self.traffic_peer_cap_bps <= 0 or self.handshake_fresh_seconds <= 0:
            raise ValueError("caps and windows are positive")
        if not 0 < self.ewma_num <= self.ewma_den:
            raise ValueError("0 < ewma_num <= ewma_den")
        if self.stake_cap_multiple <= 0:
            raise ValueError("stake_cap_multiple is positive")

    def as_json(self, version: str = FORMULA_VERSION) -> dict[str, Any]:
        """The parameters as published (integers only) under `version`."""
        w = self.weights
        extra = {} if version == FORMULA_V1 else {"stake_cap_multiple": self.stake_cap_multiple}
        return {
            **extra,
            "weights": {
                "uptime": w.uptime,
                "handshake": w.handshake,
                "latency": w.latency,
                "traffic": w.traffic,
            },
            "latency_good_us": self.latency_good_us,
            "latency_bad_us": self.latency_bad_us,
            "handshake_fresh_seconds": self.handshake_fresh_seconds,
            "traffic_unit_bps": self.traffic_unit_bps,
            "traffic_full_bps": self.traffic_full_bps,
            "traffic_peer_cap_bps": self.traffic_peer_cap_bps,
            "ewma_num": self.ewma_num,
            "ewma_den": self.ewma_den,
        }


PARAMS = FormulaParams()


@dataclass(frozen=True, slots=True)
class ProberView:
    """One prober's view of one node over the epoch: its probe rounds of the node, how many the
    node answered, and the median round trip of the answered probes (None: none answered).

    `epoch_rounds` (version 2): every round the prober ran in the epoch, on any node; the
    denominator of the node's uptime. None in version 1 data."""

    prober: str
    rounds: int
    answered: int
    median_rtt_us: int | None
    epoch_rounds: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.answered <= self.rounds:
            raise ValueError("0 <= answered <= rounds")
        if self.epoch_rounds is not None and not 0 < self.epoch_rounds >= self.rounds:
            raise ValueError("0 < epoch_rounds and rounds <= epoch_rounds")
        if self.median_rtt_us is not None and self.median_rtt_us < 0:
            raise ValueError("a round trip is not negative")


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    """What was measured of one node in one epoch (the input of `score_node`).

    `peers_with_traffic` counts the node's real peers (live configs with a paying subscriber)
    that moved bytes in the epoch; `peers_with_handshake` those of them that also completed a
    recent handshake; `served_bytes` the bytes of the latter, each peer capped (see
    `served_bytes`). `ignored_peers` counts reported peers that are not real configs: they are
    only mentioned in the reasons.

    Version 2: a "peer" above is a paying wallet (all its devices on the node together), never
    the node's operator or agent; `own_wallets` counts the wallets left out for being the
    operator or the agent. `agent` and `stake` (wei) are the chain's, as indexed; the stake
    caps the node's allocation."""

    node_id: str
    operator: str
    active: bool
    epoch_seconds: int
    probers: tuple[ProberView, ...] = ()
    peers_with_traffic: int = 0
    peers_with_handshake: int = 0
    served_bytes: int = 0
    ignored_peers: int = 0
    previous_smoothed_ppm: int | None = None
    agent: str | None = None
    stake: int = 0
    own_wallets: int = 0

    def __post_init__(self) -> None:
        if self.stake < 0 or self.own_wallets < 0:
            raise ValueError("a stake or a count is not negative")
        if self.epoch_seconds <= 0:
            raise ValueError("an epoch lasts a positive number of seconds")
        if not 0 <= self.peers_with_handshake <= self.peers_with_traffic:
            raise ValueError("0 <= peers_with_handshake <= peers_with_traffic")
        if self.served_bytes < 0 or self.ignored_peers < 0:
            raise ValueError("counts are not negative")
        if self.previous_smoothed_ppm is not None and not 0 <= self.previous_smoothed_ppm <= PPM:
            raise ValueError("a previous score is within [0, 1]")


@dataclass(frozen=True, slots=True)
class Component:
    """One part of the score: its value in [0, 1] (ppm), its weight (percent) and what it adds
    to the raw score (ppm)."""

    value_ppm: int
    weight: int
    contribution_ppm: int
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "value_ppm": self.value_ppm,
            "weight": self.weight,
            "contribution_ppm": self.contribution_ppm,
        }


@dataclass(frozen=True, slots=True)
class NodeScore:
    """A node's score for one epoch, with its breakdown and reasons.

    `raw_ppm` is this epoch alone; `smoothed_ppm` the EWMA carried to the next epoch (it follows
    measured service whether or not the node is Active); `score_ppm` what the allocation uses:
    the smoothed score, or 0 when the node is not Active on-chain."""

    node_id: str
    operator: str
    active: bool
    uptime: Component
    handshake: Component
    latency: Component
    traffic: Component
    raw_ppm: int
    smoothed_ppm: int
    score_ppm: int
    reasons: tuple[str, ...]

    @property
    def score(self) -> float:
        return self.score_ppm / PPM

    def breakdown(self) -> dict[str, Any]:
        return {
            "uptime": self.uptime.as_json(),
            "handshake": self.handshake.as_json(),
            "latency": self.latency.as_json(),
            "traffic": self.traffic.as_json(),
            "raw_ppm": self.raw_ppm,
            "smoothed_ppm": self.smoothed_ppm,
            "score_ppm": self.score_ppm,
        }


def fmt(ppm: int) -> str:
    """A ppm value as a decimal with two places, rounded half up, in integers (deterministic)."""
    hundredths = (ppm + 5_000) // 10_000
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def median_int(values: Sequence[int]) -> int:
    """The median of integers; with an even count, the floor of the middle two's mean."""
    if not values:
        raise ValueError("the median of nothing")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def served_bytes(
    peer_bytes: Sequence[int], epoch_seconds: int, params: FormulaParams = PARAMS
) -> int:
    """The bytes a node served in the epoch: each peer's bytes capped at the per-peer rate over
    the epoch, summed."""
    cap = params.traffic_peer_cap_bps * epoch_seconds
    return sum(min(max(b, 0), cap) for b in peer_bytes)


def _uptime(probers: Sequence[ProberView], weight: int) -> Component:
    views = [p for p in probers if p.rounds > 0]
    if not views:
        return Component(0, weight, 0, "uptime 0.00: no probe rounds reached this node")
    per_prober = [p.answered * PPM // p.rounds for p in views]
    value = median_int(per_prober)
    contribution = weight * value // 100
    if len(views) == 1:
        p = views[0]
        failed = p.rounds - p.answered
        reason = f"uptime {fmt(value)}: {failed} of {p.rounds} probe rounds failed"
    else:
        detail = ", ".join(
            f"{p.rounds - p.answered} of {p.rounds} failed"
            for p in sorted(views, key=lambda v: v.prober)
        )
        reason = f"uptime {fmt(value)}: median of {len(views)} probers ({detail})"
    return Component(value, weight, contribution, reason)


def _epoch_views(probers: Sequence[ProberView]) -> list[ProberView]:
    """Version 2: every prober that ran a round in the epoch (on any node)."""
    return [p for p in probers if p.epoch_rounds]


def _uptime_v2(probers: Sequence[ProberView], weight: int) -> Component:
    """Answered rounds over all the rounds each prober ran in the epoch, from its start: a node
    present for 1% of the epoch earns at most 1% uptime."""
    views = _epoch_views(probers)
    if not views:
        return Component(0, weight, 0, "uptime 0.00: no prober ran a round in this epoch")
    per_prober = [p.answered * PPM // (p.epoch_rounds or 1) for p in views]
    value = median_int(per_prober)

    def detail(p: ProberView) -> str:
        missed = f", probed in {p.rounds}" if p.rounds != p.epoch_rounds else ""
        return f"answered {p.answered} of the epoch's {p.epoch_rounds} probe rounds{missed}"

    if len(views) == 1:
        reason = f"uptime {fmt(value)}: {detail(views[0])}"
    else:
        each = "; ".join(detail(p) for p in sorted(views, key=lambda v: v.prober))
        reason = f"uptime {fmt(value)}: median of {len(views)} probers ({each})"
    return Component(value, weight, weight * value // 100, reason)


def presence_ppm(probers: Sequence[ProberView]) -> int:
    """Version 2: the share of the epoch's probe rounds in which the node was probed at all
    (median over the probers that ran); 0 if no prober ran."""
    views = _epoch_views(probers)
    if not views:
        return 0
    return median_int([p.rounds * PPM // (p.epoch_rounds or 1) for p in views])


def _scaled_by_presence(part: Component, presence: int) -> Component:
    """A quality measured while the node was present counts for that share of the epoch."""
    if presence >= PPM or part.value_ppm == 0:
        return part
    value = part.value_ppm * presence // PPM
    label, _, rest = part.reason.partition(" ")
    _, _, detail = rest.partition(": ")
    reason = (
        f"{label} {fmt(value)}: {fmt(part.value_ppm)} ({detail}) x {fmt(presence)}, the share "
        "of the epoch's probe rounds the node was in"
    )
    return Component(value, part.weight, part.weight * value // 100, reason)


def latency_value(rtt_us: int, params: FormulaParams = PARAMS) -> int:
    """A round trip mapped to [0, 1] in ppm: 1 up to the good bound, 0 from the bad one."""
    good, bad = params.latency_good_us, params.latency_bad_us
    if rtt_us <= good:
        return PPM
    if rtt_us >= bad:
        return 0
    return (bad - rtt_us) * PPM // (bad - good)


def _latency(probers: Sequence[ProberView], weight: int, params: FormulaParams) -> Component:
    rtts = [p.median_rtt_us for p in probers if p.median_rtt_us is not None and p.answered > 0]
    if not rtts:
        return Component(0, weight, 0, "latency 0.00: no answered probe to measure")
    rtt = median_int(rtts)
    value = latency_value(rtt, params)
    across = f" (median of {len(rtts)} probers)" if len(rtts) > 1 else ""
    reason = f"latency {fmt(value)}: median round trip {rtt / 1000:.1f} ms{across}"
    return Component(value, weight, weight * value // 100, reason)


def _handshake(metrics: NodeMetrics, weight: int, *, wallets: bool = False) -> Component:
    total, good = metrics.peers_with_traffic, metrics.peers_with_handshake
    who = "paying wallets" if wallets else "peers"
    if total == 0:
        return Component(0, weight, 0, f"handshake 0.00: no {who} with traffic this epoch")
    value = good * PPM // total
    reason = (
        f"handshake {fmt(value)}: {good} of {total} {who} with traffic completed a recent handshake"
    )
    return Component(value, weight, weight * value // 100, reason)


def traffic_value(served: int, epoch_seconds: int, params: FormulaParams = PARAMS) -> int:
    """Served bytes as an average rate, log-scaled to [0, 1] in ppm, full at the cap."""
    if served <= 0:
        return 0
    rate = served / epoch_seconds
    if rate >= params.traffic_full_bps:
        return PPM
    scaled = math.log1p(rate / params.traffic_unit_bps) / math.log1p(
        params.traffic_full_bps / params.traffic_unit_bps
    )
    return max(0, min(PPM, math.floor(scaled * PPM)))


def _human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _traffic(
    metrics: NodeMetrics, weight: int, params: FormulaParams, *, wallets: bool = False
) -> Component:
    value = traffic_value(metrics.served_bytes, metrics.epoch_seconds, params)
    full_mbit = params.traffic_full_bps * 8 // 1_000_000
    who = "paying wallet" if wallets else "peer"
    if metrics.served_bytes == 0:
        real = "paying wallets" if wallets else "real peers"
        reason = f"traffic 0.00: no traffic served to {real} with a recent handshake"
    else:
        peers = metrics.peers_with_handshake
        reason = (
            f"traffic {fmt(value)}: {_human_bytes(metrics.served_bytes)} served to {peers} "
            f"{who}{'s' if peers != 1 else ''} (full marks at {full_mbit} Mbit/s over the epoch)"
        )
    return Component(value, weight, weight * value // 100, reason)


def smooth(raw_ppm: int, previous_ppm: int | None, params: FormulaParams = PARAMS) -> int:
    """EWMA in integers, rounded half up; the first epoch starts at the raw score."""
    if previous_ppm is None:
        return raw_ppm
    num, den = params.ewma_num, params.ewma_den
    return (num * raw_ppm + (den - num) * previous_ppm + den // 2) // den


def score_node(
    metrics: NodeMetrics, params: FormulaParams = PARAMS, version: str = FORMULA_VERSION
) -> NodeScore:
    """The score of one node for one epoch under formula `version`."""
    if version not in VERSIONS:
        raise ValueError(f"unknown formula version {version!r}")
    w = params.weights
    if version == FORMULA_V1:
        uptime = _uptime(metrics.probers, w.uptime)
        handshake = _handshake(metrics, w.handshake)
        latency = _latency(metrics.probers, w.latency, params)
    else:
        presence = presence_ppm(metrics.probers)
        uptime = _uptime_v2(metrics.probers, w.uptime)
        handshake = _scaled_by_presence(_handshake(metrics, w.handshake, wallets=True), presence)
        latency = _scaled_by_presence(_latency(metrics.probers, w.latency, params), presence)
    traffic = _traffic(metrics, w.traffic, params, wallets=version != FORMULA_V1)
    parts = (uptime, handshake, latency, traffic)
    raw = sum(p.contribution_ppm for p in parts)
    smoothed = smooth(raw, metrics.previous_smoothed_ppm, params)
    score = smoothed if metrics.active else 0

    reasons = [p.reason for p in parts]
    if metrics.ignored_peers:
        n = metrics.ignored_peers
        reasons.append(
            f"ignored {n} reported peer{'s' if n != 1 else ''} that {'are' if n != 1 else 'is'} "
            "not a live config of this node with a paying subscriber"
        )
    if metrics.own_wallets:
        n = metrics.own_wallets
        reasons.append(
            f"ignored the traffic of {n} wallet{'s' if n != 1 else ''} that "
            f"{'are' if n != 1 else 'is'} this node's own operator or agent"
        )
    formula = " + ".join(f"{p.weight}% x {fmt(p.value_ppm)}" for p in parts)
    reasons.append(f"this epoch {fmt(raw)} = {formula}")
    if metrics.previous_smoothed_ppm is None:
        reasons.append(f"smoothed {fmt(smoothed)}: first scored epoch, no history to smooth")
    else:
        alpha = params.ewma_num * 100 // params.ewma_den
        reasons.append(
            f"smoothed {fmt(smoothed)}: {alpha}% this epoch ({fmt(raw)}) + {100 - alpha}% "
            f"previous ({fmt(metrics.previous_smoothed_ppm)})"
        )
    if not metrics.active:
        reasons.append("score 0.00: the node is not Active in NodeRegistry")
    else:
        reasons.append(f"score {fmt(score)}")
    return NodeScore(
        node_id=metrics.node_id,
        operator=metrics.operator,
        active=metrics.active,
        uptime=uptime,
        handshake=handshake,
        latency=latency,
        traffic=traffic,
        raw_ppm=raw,
        smoothed_ppm=smoothed,
        score_ppm=score,
        reasons=tuple(reasons),
    )
