"""Gathering an epoch's inputs: each node's metrics from the database and the reward pool from
the chain, then the pure formula (formula/epoch.py) turns them into the epoch."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.client import ChainReader
from control_plane.prober.service import verified_samples
from control_plane.rewards import repository
from control_plane.rewards.formula.epoch import (
    EpochResult,
    NodeTraffic,
    compute_epoch,
    prober_views,
    tally_traffic,
    unix_seconds,
)
from control_plane.rewards.formula.scoring import PARAMS, FormulaParams, NodeMetrics, served_bytes


async def total_funded(chain: ChainReader) -> int:
    """RewardDistributor.totalFunded: everything that entered the pool through `fund`, read
    through the chain reader's retries and circuit breaker."""
    return await chain.distributor.total_funded()


async def gather_metrics(
    session: AsyncSession,
    chain_id: int,
    epoch: int,
    start: datetime,
    end: datetime,
    params: FormulaParams = PARAMS,
) -> tuple[list[NodeMetrics], int]:
    """Each node's measured inputs for `[start, end)` and the number of probe rounds seen."""
    epoch_seconds = unix_seconds(end) - unix_seconds(start)
    if epoch_seconds <= 0:
        raise ValueError("an epoch ends after it starts")
    nodes = await repository.epoch_nodes(session, start, end)
    samples = await verified_samples(session, chain_id, start, end)
    views = prober_views(samples, [node.node_id for node in nodes])
    probe_rounds = len({(s.prober, s.round) for s in samples})
    traffic = tally_traffic(
        await repository.peer_reports(session, start, end),
        timedelta(seconds=params.handshake_fresh_seconds),
        {
            node.node_id: frozenset(w for w in (node.operator, node.agent) if w is not None)
            for node in nodes
        },
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
                agent=node.agent,
                stake=node.stake,
                own_wallets=tally.own_wallets,
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
