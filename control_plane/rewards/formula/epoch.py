"""An epoch from its inputs (signed probe samples, agents' per-peer reports filtered to real
configs, on-chain node state, the previous smoothed scores): the scores, the allocation, the
cumulative leaves and the canonical published data with its keccak256. Pure: posting/gather.py
reads the inputs from the database and the chain.

The published data is canonical JSON: keys sorted, no whitespace, ASCII only, no floats; every
amount (and byte count) is a decimal string, every ppm or count a JSON integer, addresses and ids
lower-case 0x-hex. `keccak256(data)` is the `dataHash` proposed on-chain, so anyone holding the
bytes can check them, and anyone can recompute scores -> allocations -> leaves -> root from them
(docs/scoring.md shows how).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eth_utils.crypto import keccak

from control_plane.prober.signing import Sample
from control_plane.rewards.formula.allocation import (
    allocate_capped,
    by_operator,
    cap_budget,
    cumulate,
    stake_cap,
)
from control_plane.rewards.formula.merkle import RewardTree
from control_plane.rewards.formula.scoring import (
    FORMULA_VERSION,
    PARAMS,
    FormulaParams,
    NodeMetrics,
    NodeScore,
    ProberView,
    median_int,
    score_node,
)

DATA_TYPE = "nodus-epoch/2"  # version 1 data (nodus-score/1) is "nodus-epoch/1"
EMPTY_ROOT = "0x" + "00" * 32


@dataclass(frozen=True, slots=True)
class PeerReport:
    """One per-peer report of a node agent. `wallet`: the subscriber (lower-case) whose live
    config of that node the peer was when reported, if that subscriber had paid; None: the peer
    was no such config (not real). `baseline`: the report is from before the epoch and only
    gives the counters' starting point."""

    node_id: str
    peer: str  # "wg:<public key>" or "ovpn:<serial>"
    reported_at: datetime
    last_handshake_at: datetime | None
    rx_bytes: int
    tx_bytes: int
    wallet: str | None
    baseline: bool

    @property
    def real(self) -> bool:
        return self.wallet is not None


@dataclass(frozen=True, slots=True)
class NodeTraffic:
    """What a node's agent reported about its paying wallets over the epoch (version 2: all the
    devices of a wallet on the node count as one; the node's operator and agent never count)."""

    peers_with_traffic: int = 0  # paying wallets that moved bytes
    peers_with_handshake: int = 0  # of those, wallets with a recent handshake on some device
    handshake_peer_bytes: tuple[int, ...] = ()  # per wallet with traffic and a recent handshake
    ignored_peers: int = 0  # reported peers that were never a live config with a paying wallet
    own_wallets: int = 0  # wallets left out for being the node's operator or agent


@dataclass(frozen=True, slots=True)
class EpochResult:
    chain_id: int
    epoch: int
    start: datetime
    end: datetime
    formula_version: str
    requested_budget: int
    total_funded: int
    budget: int  # the requested budget capped by what the pool can still pay
    probe_rounds: int  # distinct (prober, round) pairs seen: 0 means nothing measured uptime
    metrics: tuple[NodeMetrics, ...]
    scores: tuple[NodeScore, ...]
    node_allocations: dict[str, int]  # each node's part, after its stake cap
    # This epoch's part per operator: sums to `budget` unless stake caps withheld some (that
    # stays in the pool), or to 0 if no node scored.
    allocations: dict[str, int]
    previous_cumulative: dict[str, int]
    cumulative: dict[str, int]  # the leaves: operator -> cumulative amount
    total_cumulative: int
    root: str  # 0x-hex; all zero when there is no leaf
    data: bytes = field(repr=False)
    data_hash: str

    @property
    def tree(self) -> RewardTree | None:
        return RewardTree.build(self.cumulative.items()) if self.cumulative else None


def prober_views(
    samples: Sequence[Sample], node_ids: Iterable[str]
) -> dict[str, tuple[ProberView, ...]]:
    """Per node, each prober's rounds of it, the rounds it answered, the median round trip (the
    median over answered rounds of each round's median attempt) and the rounds the prober ran in
    the whole epoch on any node. Every node gets a view from every prober that ran, probed or
    not: a round that skipped a node counts against it (version 2)."""
    grouped: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    epoch_rounds: dict[str, set[int]] = defaultdict(set)
    for sample in samples:
        grouped[sample.node_id.lower()][sample.prober.lower()].append(sample)
        epoch_rounds[sample.prober.lower()].add(sample.round)
    views: dict[str, tuple[ProberView, ...]] = {}
    for node_id in sorted({n.lower() for n in node_ids}):
        by_prober = grouped.get(node_id, {})
        node_views = []
        for prober, ran in sorted(epoch_rounds.items()):
            rounds = {s.round: s for s in by_prober.get(prober, [])}  # one sample per round
            answered = [s for s in rounds.values() if s.answered]
            round_rtts = [median_int(s.rtt_us) for s in answered]
            node_views.append(
                ProberView(
                    prober=prober,
                    rounds=len(rounds),
                    answered=len(answered),
                    median_rtt_us=median_int(round_rtts) if round_rtts else None,
                    epoch_rounds=len(ran),
                )
            )
        views[node_id] = tuple(node_views)
    return views


def _delta(current: int, previous: int | None) -> int:
    """Bytes since the previous report; a counter below its previous value was reset (the peer
    was re-added), so all of it is new."""
    if previous is None or current < previous:
        return current
    return current - previous


def tally_traffic(
    reports: Sequence[PeerReport],
    fresh: timedelta,
    own_wallets: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, NodeTraffic]:
    """Per node, from its agent's per-peer reports (sorted by node, peer, time): bytes are
    differences between consecutive reports of a peer (from the baseline before the epoch when
    there is one), counted only while the peer is a live config with a paying wallet, and added
    up per wallet; a wallet counts as handshaking if a real report of one of its devices shows a
    handshake at most `fresh` before it. The wallets in `own_wallets[node]` (the node's operator
    and agent) are left out and counted. Reports of peers that were never real are ignored (and
    counted)."""
    own_wallets = own_wallets or {}
    by_peer: dict[tuple[str, str], list[PeerReport]] = defaultdict(list)
    for report in reports:
        by_peer[(report.node_id, report.peer)].append(report)

    wallet_bytes: dict[tuple[str, str], int] = defaultdict(int)
    wallet_recent: dict[tuple[str, str], bool] = defaultdict(bool)
    ignored: dict[str, int] = defaultdict(int)
    for (node_id, _), peer_reports in by_peer.items():
        previous_rx: int | None = None
        previous_tx: int | None = None
        seen_real, seen_in_window = False, False
        for report in peer_reports:
            delta = _delta(report.rx_bytes, previous_rx) + _delta(report.tx_bytes, previous_tx)
            previous_rx, previous_tx = report.rx_bytes, report.tx_bytes
            if report.baseline:
                continue
            seen_in_window = True
            if report.wallet is None:
                continue
            seen_real = True
            key = (node_id, report.wallet.lower())
            wallet_bytes[key] += delta
            handshake = report.last_handshake_at
            if handshake is not None and report.reported_at - handshake <= fresh:
                wallet_recent[key] = True
        if seen_in_window and not seen_real:
            ignored[node_id] += 1

    with_traffic: dict[str, int] = defaultdict(int)
    with_handshake: dict[str, int] = defaultdict(int)
    peer_bytes: dict[str, list[int]] = defaultdict(list)
    own: dict[str, int] = defaultdict(int)
    for (node_id, wallet), total in wallet_bytes.items():
        if wallet in own_wallets.get(node_id, frozenset()):
            own[node_id] += 1
            continue
        if total > 0:
            with_traffic[node_id] += 1
            if wallet_recent[(node_id, wallet)]:
                with_handshake[node_id] += 1
                peer_bytes[node_id].append(total)

    nodes = set(with_traffic) | set(ignored) | set(own)
    return {
        node_id: NodeTraffic(
            peers_with_traffic=with_traffic[node_id],
            peers_with_handshake=with_handshake[node_id],
            handshake_peer_bytes=tuple(sorted(peer_bytes[node_id])),
            ignored_peers=ignored[node_id],
            own_wallets=own[node_id],
        )
        for node_id in nodes
    }


def unix_seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("epoch bounds must be timezone-aware")
    return int(moment.timestamp())


def canonical_json(value: object) -> bytes:
    """The one byte encoding of published data (rejects floats, so nothing is ambiguous)."""

    # An epoch of 100,000 operators has millions of values: each container's value types are
    # collected at C speed (set(map(type, ...))) and only nested containers are walked here.
    pending: list[Iterable[object]] = [[value]]
    while pending:
        items = pending.pop()
        for kind in set(map(type, items)):
            if issubclass(kind, float):
                raise TypeError("published data carries no floats")
            if issubclass(kind, dict):
                pending.extend(item.values() for item in items if isinstance(item, dict))
            elif issubclass(kind, list | tuple):
                pending.extend(item for item in items if isinstance(item, list | tuple))
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _metrics_json(metrics: NodeMetrics) -> dict[str, Any]:
    return {
        "epoch_seconds": metrics.epoch_seconds,
        "probers": [
            {
                "prober": view.prober,
                "rounds": view.rounds,
                "answered": view.answered,
                "median_rtt_us": view.median_rtt_us,
                "epoch_rounds": view.epoch_rounds,
            }
            for view in metrics.probers
        ],
        "peers_with_traffic": metrics.peers_with_traffic,
        "peers_with_handshake": metrics.peers_with_handshake,
        "served_bytes": str(metrics.served_bytes),
        "ignored_peers": metrics.ignored_peers,
        "own_wallets": metrics.own_wallets,
        "previous_smoothed_ppm": metrics.previous_smoothed_ppm,
    }


def published_data(
    *,
    chain_id: int,
    epoch: int,
    start: int,
    end: int,
    params: FormulaParams,
    requested_budget: int,
    total_funded: int,
    budget: int,
    probe_rounds: int,
    metrics: Sequence[NodeMetrics],
    scores: Sequence[NodeScore],
    node_allocations: Mapping[str, int],
    allocations: Mapping[str, int],
    previous_cumulative: Mapping[str, int],
    cumulative: Mapping[str, int],
    root: str,
) -> dict[str, Any]:
    """The epoch's published data (version 2), before encoding."""
    by_node = {m.node_id: m for m in metrics}
    prober_rounds: dict[str, int] = {}
    for m in metrics:
        for view in m.probers:
            if view.epoch_rounds:
                prober_rounds[view.prober] = view.epoch_rounds
    return {
        "type": DATA_TYPE,
        "chain_id": chain_id,
        "epoch": epoch,
        "start": start,
        "end": end,
        "formula": {"version": FORMULA_VERSION, "params": params.as_json(FORMULA_VERSION)},
        "budget": {
            "requested": str(requested_budget),
            "total_funded": str(total_funded),
            "previous_total": str(sum(previous_cumulative.values())),
            "effective": str(budget),
            "allocated": str(sum(allocations.values())),
        },
        "probe_rounds": probe_rounds,
        "prober_rounds": [
            {"prober": prober, "rounds": rounds} for prober, rounds in sorted(prober_rounds.items())
        ],
        "nodes": [
            {
                "node_id": score.node_id,
                "operator": score.operator.lower(),
                "agent": by_node[score.node_id].agent,
                "stake": str(by_node[score.node_id].stake),
                "active": score.active,
                "metrics": _metrics_json(by_node[score.node_id]),
                "breakdown": score.breakdown(),
                "reasons": list(score.reasons),
                "allocation": {
                    "cap": str(stake_cap(by_node[score.node_id].stake, params.stake_cap_multiple)),
                    "amount": str(node_allocations[score.node_id]),
                },
            }
            for score in sorted(scores, key=lambda s: s.node_id)
        ],
        "allocations": [
            {"operator": operator, "amount": str(amount)}
            for operator, amount in sorted(allocations.items())
        ],
        "previous_leaves": [
            {"account": account, "cumulative_amount": str(amount)}
            for account, amount in sorted(previous_cumulative.items())
        ],
        "leaves": [
            {"account": account, "cumulative_amount": str(amount)}
            for account, amount in sorted(cumulative.items())
        ],
        "total_cumulative": str(sum(cumulative.values())),
        "root": root,
    }


def compute_epoch(
    *,
    chain_id: int,
    epoch: int,
    start: datetime,
    end: datetime,
    requested_budget: int,
    total_funded: int,
    previous_cumulative: Mapping[str, int],
    metrics: Sequence[NodeMetrics],
    probe_rounds: int,
    params: FormulaParams = PARAMS,
) -> EpochResult:
    """Everything after the inputs are gathered (pure): scores, budget cap, allocation over
    nodes with their stake caps, leaves, root and published data (version 2)."""
    previous = cumulate(previous_cumulative, {})
    scores = tuple(score_node(m, params, FORMULA_VERSION) for m in metrics)
    budget = cap_budget(requested_budget, total_funded, sum(previous.values()))
    node_parts = allocate_capped(
        budget,
        {s.node_id: s.score_ppm for s in scores},
        {m.node_id: stake_cap(m.stake, params.stake_cap_multiple) for m in metrics},
    )
    parts = by_operator(node_parts, {s.node_id: s.operator for s in scores})
    leaves = cumulate(previous, parts)
    root = "0x" + RewardTree.build(leaves.items()).root.hex() if leaves else EMPTY_ROOT
    document = published_data(
        chain_id=chain_id,
        epoch=epoch,
        start=unix_seconds(start),
        end=unix_seconds(end),
        params=params,
        requested_budget=requested_budget,
        total_funded=total_funded,
        budget=budget,
        probe_rounds=probe_rounds,
        metrics=metrics,
        scores=scores,
        node_allocations=node_parts,
        allocations=parts,
        previous_cumulative=previous,
        cumulative=leaves,
        root=root,
    )
    data = canonical_json(document)
    return EpochResult(
        chain_id=chain_id,
        epoch=epoch,
        start=start,
        end=end,
        formula_version=FORMULA_VERSION,
        requested_budget=requested_budget,
        total_funded=total_funded,
        budget=budget,
        probe_rounds=probe_rounds,
        metrics=tuple(metrics),
        scores=scores,
        node_allocations=node_parts,
        allocations=parts,
        previous_cumulative=previous,
        cumulative=leaves,
        total_cumulative=sum(leaves.values()),
        root=root,
        data=data,
        data_hash="0x" + keccak(data).hex(),
    )
