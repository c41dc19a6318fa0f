"""Building an epoch: its inputs from the database (signed probe samples, agents' per-peer
reports filtered to real configs, on-chain node state, the previous smoothed scores), the scores,
the allocation, the cumulative leaves and the canonical published data with its keccak256.

The published data is canonical JSON: keys sorted, no whitespace, ASCII only, no floats; every
amount (and byte count) is a decimal string, every ppm or count a JSON integer, addresses and ids
lower-case 0x-hex. `keccak256(data)` is the `dataHash` proposed on-chain, so anyone holding the
bytes can check them, and anyone can recompute scores -> allocations -> leaves -> root from them
(docs/scoring.md shows how).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.client import ChainReader, Web3ChainReader
from control_plane.chain.contracts import contract
from control_plane.prober.service import verified_samples
from control_plane.prober.signing import Sample
from control_plane.rewards import repository
from control_plane.rewards.allocation import allocate, cap_budget, cumulate, operator_weights
from control_plane.rewards.merkle import RewardTree
from control_plane.rewards.repository import PeerReport
from control_plane.rewards.scoring import (
    FORMULA_VERSION,
    PARAMS,
    FormulaParams,
    NodeMetrics,
    NodeScore,
    ProberView,
    median_int,
    score_node,
    served_bytes,
)

DATA_TYPE = "nodus-epoch/1"
EMPTY_ROOT = "0x" + "00" * 32


@dataclass(frozen=True, slots=True)
class NodeTraffic:
    """What a node's agent reported about its real peers over the epoch."""

    peers_with_traffic: int = 0
    peers_with_handshake: int = 0
    handshake_peer_bytes: tuple[int, ...] = ()  # per peer with traffic and a recent handshake
    ignored_peers: int = 0


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
    allocations: dict[str, int]  # this epoch's part per operator (sums to `budget`, or 0)
    previous_cumulative: dict[str, int]
    cumulative: dict[str, int]  # the leaves: operator -> cumulative amount
    total_cumulative: int
    root: str  # 0x-hex; all zero when there is no leaf
    data: bytes = field(repr=False)
    data_hash: str

    @property
    def tree(self) -> RewardTree | None:
        return RewardTree.build(self.cumulative.items()) if self.cumulative else None


def prober_views(samples: Sequence[Sample]) -> dict[str, tuple[ProberView, ...]]:
    """Per node, each prober's rounds, answered rounds and median round trip (the median over
    answered rounds of each round's median attempt)."""
    grouped: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        grouped[sample.node_id.lower()][sample.prober.lower()].append(sample)
    views: dict[str, tuple[ProberView, ...]] = {}
    for node_id, by_prober in grouped.items():
        node_views = []
        for prober, own in sorted(by_prober.items()):
            rounds = {s.round: s for s in own}  # one sample per round (the table enforces it)
            answered = [s for s in rounds.values() if s.answered]
            round_rtts = [median_int(s.rtt_us) for s in answered]
            node_views.append(
                ProberView(
                    prober=prober,
                    rounds=len(rounds),
                    answered=len(answered),
                    median_rtt_us=median_int(round_rtts) if round_rtts else None,
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


def tally_traffic(reports: Sequence[PeerReport], fresh: timedelta) -> dict[str, NodeTraffic]:
    """Per node, from its agent's per-peer reports (sorted by node, peer, time): bytes are
    differences between consecutive reports (from the baseline before the epoch when there is
    one), counted only while the peer is a real config; a peer counts as handshaking if a real
    report shows a handshake at most `fresh` before it. Reports of peers that were never real
    are ignored (and counted)."""
    by_peer: dict[tuple[str, str], list[PeerReport]] = defaultdict(list)
    for report in reports:
        by_peer[(report.node_id, report.peer)].append(report)

    with_traffic: dict[str, int] = defaultdict(int)
    with_handshake: dict[str, int] = defaultdict(int)
    peer_bytes: dict[str, list[int]] = defaultdict(list)
    ignored: dict[str, int] = defaultdict(int)
    for (node_id, _), peer_reports in by_peer.items():
        previous_rx: int | None = None
        previous_tx: int | None = None
        real_bytes, seen_real, seen_in_window, recent = 0, False, False, False
        for report in peer_reports:
            delta = _delta(report.rx_bytes, previous_rx) + _delta(report.tx_bytes, previous_tx)
            previous_rx, previous_tx = report.rx_bytes, report.tx_bytes
            if report.baseline:
                continue
            seen_in_window = True
            if not report.real:
                continue
            seen_real = True
            real_bytes += delta
            handshake = report.last_handshake_at
            if handshake is not None and report.reported_at - handshake <= fresh:
                recent = True
        if seen_in_window and not seen_real:
            ignored[node_id] += 1
        if real_bytes > 0:
            with_traffic[node_id] += 1
            if recent:
                with_handshake[node_id] += 1
                peer_bytes[node_id].append(real_bytes)

    nodes = set(with_traffic) | set(ignored)
    return {
        node_id: NodeTraffic(
            peers_with_traffic=with_traffic[node_id],
            peers_with_handshake=with_handshake[node_id],
            handshake_peer_bytes=tuple(sorted(peer_bytes[node_id])),
            ignored_peers=ignored[node_id],
        )
        for node_id in nodes
    }


async def total_funded(chain: ChainReader) -> int:
    """RewardDistributor.totalFunded: everything that entered the pool through `fund`, read
    through the chain reader's retries and circuit breaker."""
    if not isinstance(chain, Web3ChainReader):
        raise TypeError("reading the reward pool needs a Web3ChainReader")
    distributor = contract(chain.w3, chain.deployment, "RewardDistributor")
    funded: Any = await chain.call(lambda: distributor.functions.totalFunded().call())
    return int(funded)


def _unix(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("epoch bounds must be timezone-aware")
    return int(moment.timestamp())


def canonical_json(value: object) -> bytes:
    """The one byte encoding of published data (rejects floats, so nothing is ambiguous)."""

    def check(item: object) -> None:
        if isinstance(item, float):
            raise TypeError("published data carries no floats")
        if isinstance(item, dict):
            for v in item.values():
                check(v)
        elif isinstance(item, list | tuple):
            for v in item:
                check(v)

    check(value)
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
            }
            for view in metrics.probers
        ],
        "peers_with_traffic": metrics.peers_with_traffic,
        "peers_with_handshake": metrics.peers_with_handshake,
        "served_bytes": str(metrics.served_bytes),
        "ignored_peers": metrics.ignored_peers,
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
    allocations: Mapping[str, int],
    previous_cumulative: Mapping[str, int],
    cumulative: Mapping[str, int],
    root: str,
) -> dict[str, Any]:
    """The epoch's published data, before encoding."""
    by_node = {m.node_id: m for m in metrics}
    return {
        "type": DATA_TYPE,
        "chain_id": chain_id,
        "epoch": epoch,
        "start": start,
        "end": end,
        "formula": {"version": FORMULA_VERSION, "params": params.as_json()},
        "budget": {
            "requested": str(requested_budget),
            "total_funded": str(total_funded),
            "previous_total": str(sum(previous_cumulative.values())),
            "effective": str(budget),
        },
        "probe_rounds": probe_rounds,
        "nodes": [
            {
                "node_id": score.node_id,
                "operator": score.operator.lower(),
                "active": score.active,
                "metrics": _metrics_json(by_node[score.node_id]),
                "breakdown": score.breakdown(),
                "reasons": list(score.reasons),
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
    """Everything after the inputs are gathered (pure): scores, budget cap, allocation, leaves,
    root and published data."""
    previous = cumulate(previous_cumulative, {})
    scores = tuple(score_node(m, params) for m in metrics)
    budget = cap_budget(requested_budget, total_funded, sum(previous.values()))
    parts = allocate(budget, operator_weights(scores))
    leaves = cumulate(previous, parts)
    root = "0x" + RewardTree.build(leaves.items()).root.hex() if leaves else EMPTY_ROOT
    document = published_data(
        chain_id=chain_id,
        epoch=epoch,
        start=_unix(start),
        end=_unix(end),
        params=params,
        requested_budget=requested_budget,
        total_funded=total_funded,
        budget=budget,
        probe_rounds=probe_rounds,
        metrics=metrics,
        scores=scores,
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
        allocations=parts,
        previous_cumulative=previous,
        cumulative=leaves,
        total_cumulative=sum(leaves.values()),
        root=root,
        data=data,
        data_hash="0x" + keccak(data).hex(),
    )


async def gather_metrics(
    session: AsyncSession,
    chain_id: int,
    epoch: int,
    start: datetime,
    end: datetime,
    params: FormulaParams = PARAMS,
) -> tuple[list[NodeMetrics], int]:
    """Each node's measured inputs for `[start, end)` and the number of probe rounds seen."""
    epoch_seconds = _unix(end) - _unix(start)
    if epoch_seconds <= 0:
        raise ValueError("an epoch ends after it starts")
    nodes = await repository.epoch_nodes(session, start, end)
    samples = await verified_samples(session, chain_id, start, end)
    views = prober_views(samples)
    probe_rounds = len({(s.prober, s.round) for s in samples})
    traffic = tally_traffic(
        await repository.peer_reports(session, start, end),
        timedelta(seconds=params.handshake_fresh_seconds),
    )
    previous = await repository.previous_smoothed(session, chain_id, epoch)
    metrics = []
    for node in nodes:
        tally = traffic.get(node.node_id, NodeTraffic())
        metrics.append(
            NodeMetrics(
                node_id=node.node_id,
                operator=node.operator,
                active=node.active,
                epoch_seconds=epoch_seconds,
                probers=views.get(node.node_id, ()),
                peers_with_traffic=tally.peers_with_traffic,
                peers_with_handshake=tally.peers_with_handshake,
                served_bytes=served_bytes(tally.handshake_peer_bytes, epoch_seconds, params),
                ignored_peers=tally.ignored_peers,
                previous_smoothed_ppm=previous.get(node.node_id),
            )
        )
    return metrics, probe_rounds


async def build_epoch(
    session: AsyncSession,
    chain: ChainReader,
    epoch: int,
    start: datetime,
    end: datetime,
    budget: int,
    previous_cumulative: Mapping[str, int],
    *,
    params: FormulaParams = PARAMS,
) -> EpochResult:
    """Scores every node registered during `[start, end)`, splits `budget` (capped by what the
    RewardDistributor can still pay: totalFunded - the previous leaves' total) over operators,
    and returns the leaves, the root and the canonical published data with its keccak256.

    `previous_cumulative` is the leaves of the last accepted epoch (see
    `repository.latest_accepted_cumulative`). Reads only; record the result with
    `repository.save_epoch_scores` in the transaction that records the epoch."""
    metrics, probe_rounds = await gather_metrics(session, chain.chain_id, epoch, start, end, params)
    funded = await total_funded(chain)
    return compute_epoch(
        chain_id=chain.chain_id,
        epoch=epoch,
        start=start,
        end=end,
        requested_budget=budget,
        total_funded=funded,
        previous_cumulative=previous_cumulative,
        metrics=metrics,
        probe_rounds=probe_rounds,
        params=params,
    )
