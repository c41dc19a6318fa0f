"""A node's health as the probers see it, and one probe on demand (`nodus-agent selftest`).

Every verdict carries a reason code and a line on how to fix it (prober/reasons.py). The view
reads the same samples scoring trusts (probers not revoked, signatures checked on read). The
on-demand probe runs the probers' own code (nonce, signed proof) against the node now; it is
not stored: a sample is a round, and an extra answered "round" per request would let a node
pad its uptime. Here, not in the prober domain, because the probe-measured score parts come
from the rewards formula. Raises AppErrors; never commits (the on-demand probe reads in its own
short transaction, see `probe_now`)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.auth.rate_limit import TokenBucketLimiter
from control_plane.chain.client import ChainReader
from control_plane.db import unit_of_work
from control_plane.errors import Forbidden, NotFound, RateLimited
from control_plane.indexer.models import ChainNode
from control_plane.nodes.models import Node
from control_plane.nodes.repository import NodeRepository
from control_plane.prober import reasons
from control_plane.prober import repository as prober_repository
from control_plane.prober.probe import probe_all
from control_plane.prober.repository import StoredSample
from control_plane.prober.service import targets_of
from control_plane.prober.settings import ProberSettings
from control_plane.prober.signing import Sample, verify_sample
from control_plane.rewards.formula.scoring import PARAMS, PPM, latency_value
from control_plane.rewards.health_schemas import (
    HealthRoundOut,
    HealthSummaryOut,
    NodeHealthOut,
    ProbeNowOut,
    ScoreComponentOut,
)

# Samples read for the summary (each prober's latest recent round), whatever page was asked.
SUMMARY_SAMPLES = 200
# A round older than this many probe intervals (and at least STALE_MIN) is not "recent".
STALE_INTERVALS = 3
STALE_MIN = timedelta(minutes=5)


def _latency_ms(rtt_us: Sequence[int]) -> float | None:
    return round(statistics.median(rtt_us) / 1000, 3) if rtt_us else None


def _reason(sample: Sample) -> str:
    if sample.answered:
        return reasons.OK
    return sample.error or reasons.NO_ANSWER


def _round_out(stored: StoredSample) -> HealthRoundOut:
    sample = stored.sample
    reason = _reason(sample)
    return HealthRoundOut(
        prober=sample.prober,
        round=sample.round,
        round_at=stored.round_at,
        verdict="up" if sample.answered else "down",
        reason=reason,
        fix=reasons.fix_for(reason),
        attempts=sample.attempts,
        answered=len(sample.rtt_us),
        latency_ms=_latency_ms(sample.rtt_us),
    )


def _summary(verdict: str, reason: str, **counts: object) -> HealthSummaryOut:
    values: dict[str, object] = {"as_of": None, "probers": 0, "up": 0, **counts}
    return HealthSummaryOut.model_validate(
        {"verdict": verdict, "reason": reason, "fix": reasons.fix_for(reason), **values}
    )


def _judge(
    node: Node,
    on_chain: ChainNode | None,
    samples: Sequence[StoredSample],
    now: datetime,
    stale_after: timedelta,
) -> HealthSummaryOut:
    """The summary verdict: first why the node is not probed at all, then each prober's latest
    recent round (up if at least half of them answered; else the most common failure)."""
    if node.deleted_at is not None:
        return _summary("down", reasons.DELETED)
    if on_chain is None:
        return _summary("unknown", reasons.NOT_INDEXED)
    if not on_chain.active:
        return _summary("down", reasons.NOT_ACTIVE_ON_CHAIN)
    if not samples:
        return _summary("unknown", reasons.NEVER_PROBED)
    if samples[0].round_at < now - stale_after:
        return _summary("unknown", reasons.NO_RECENT_ROUNDS, as_of=samples[0].round_at)
    latest: dict[str, StoredSample] = {}
    for stored in samples:  # newest first: the first of each prober is its latest
        if stored.round_at >= now - stale_after:
            latest.setdefault(stored.sample.prober, stored)
    up = sum(1 for s in latest.values() if s.sample.answered)
    counts = {"as_of": samples[0].round_at, "probers": len(latest), "up": up}
    if 2 * up >= len(latest):
        return _summary("up", reasons.OK, **counts)
    failures = Counter(_reason(s.sample) for s in latest.values() if not s.sample.answered)
    reason = min(failures, key=lambda code: (-failures[code], code))
    return _summary("down", reason, **counts)


async def node_health(
    session: AsyncSession,
    chain_id: int,
    prober_settings: ProberSettings,
    node_id: str,
    limit: int,
    *,
    now: datetime | None = None,
) -> NodeHealthOut:
    """The node's newest `limit` probe rounds (verified samples of probers not revoked) and
    the summary verdict. NotFound for a node never registered here."""
    nodes = NodeRepository(session)
    node = await nodes.get(node_id)
    if node is None:
        raise NotFound("no such node")
    stored = await prober_repository.latest_trusted_samples(
        session, node_id, max(limit, SUMMARY_SAMPLES)
    )
    trusted = [s for s in stored if verify_sample(s.sample, chain_id, s.signature)]
    stale_after = max(
        STALE_MIN, timedelta(seconds=STALE_INTERVALS * prober_settings.interval_seconds)
    )
    summary = _judge(
        node, await nodes.chain_state(node_id), trusted, now or datetime.now(UTC), stale_after
    )
    return NodeHealthOut(
        node_id=node_id, summary=summary, rounds=[_round_out(s) for s in trusted[:limit]]
    )


def _component(name: Literal["uptime", "latency"], value: float, weight: int) -> ScoreComponentOut:
    return ScoreComponentOut(
        name=name, value=value, weight=weight / 100, contribution=value * weight / 100
    )


def _components(rtt_us: Sequence[int]) -> list[ScoreComponentOut]:
    """Uptime and latency as the formula would value them if every round went like this one."""
    weights = PARAMS.weights
    if not rtt_us:
        return [
            _component("uptime", 0.0, weights.uptime),
            _component("latency", 0.0, weights.latency),
        ]
    latency = latency_value(round(statistics.median(rtt_us)), PARAMS) / PPM
    return [
        _component("uptime", 1.0, weights.uptime),
        _component("latency", latency, weights.latency),
    ]


@dataclass(frozen=True, slots=True)
class ProbeCaller:
    """Who asks for a probe: a node's agent (its token, already checked against the chain
    mirror) or a wallet."""

    agent_of: str | None = None  # the node id of the agent's token
    operator: str | None = None  # the wallet

    def may_probe(self, node: Node, on_chain: ChainNode | None) -> bool:
        if self.agent_of is not None:
            return self.agent_of == node.id
        if self.operator is None:
            return False
        wallet = self.operator.lower()
        return node.operator.lower() == wallet and (
            on_chain is None or on_chain.operator.lower() == wallet
        )


async def probe_now(
    sessions: async_sessionmaker[AsyncSession],
    chain: ChainReader,
    prober_settings: ProberSettings,
    limiter: TokenBucketLimiter,
    node_id: str,
    caller: ProbeCaller,
    tracer: Tracer | None = None,
) -> ProbeNowOut:
    """Probes the node once, now, for its agent or its operator (else Forbidden, checked after
    NotFound for a node not live here). One probe per node per limiter period (RateLimited
    with Retry-After); a node not Active on-chain is not probed (its reason says so).

    Its own short read transaction, ended before the chain read and the probe: a probe waits
    on the node for up to samples x timeout, and holding a pool connection meanwhile would let
    a few dozen slow nodes take the whole pool."""
    async with unit_of_work(sessions) as session:
        nodes = NodeRepository(session)
        node = await nodes.get(node_id)
        if node is None or node.deleted_at is not None:
            raise NotFound("no such node here: register it with the API first (POST /v1/nodes)")
        mirrored = await nodes.chain_state(node_id)
    if not caller.may_probe(node, mirrored):
        raise Forbidden("only the node's operator or its agent can ask for a probe")
    wait = limiter.take(node_id)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise RateLimited(
            f"this node was probed on demand less than {round(limiter.capacity / limiter.rate)}"
            f" s ago; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    probed_at = datetime.now(UTC)
    if mirrored is not None:
        active, agent = mirrored.active, mirrored.agent
    else:  # registered a moment ago: the indexer has not seen it yet
        live = await chain.node(node_id)
        active, agent = live.active, live.agent
    if not active:
        return _probe_out(node_id, reasons.NOT_ACTIVE_ON_CHAIN, 0, (), probed_at)
    results = await probe_all(
        targets_of([(node_id, node.endpoint, agent.lower())]),
        attempts=prober_settings.samples,
        request_timeout=prober_settings.timeout_seconds,
        concurrency=1,
        allow_private=prober_settings.allow_private_targets,
        tracer=tracer,
    )
    result = results[node_id]
    reason = reasons.OK if result.rtt_us else (result.error or reasons.NO_ANSWER)
    return _probe_out(node_id, reason, result.attempts, result.rtt_us, probed_at)


def _probe_out(
    node_id: str, reason: str, attempts: int, rtt_us: Sequence[int], probed_at: datetime
) -> ProbeNowOut:
    components = _components(rtt_us)
    return ProbeNowOut(
        node_id=node_id,
        verdict="up" if rtt_us else "down",
        reason=reason,
        fix=reasons.fix_for(reason),
        latency_ms=_latency_ms(rtt_us),
        attempts=attempts,
        answered=len(rtt_us),
        probed_at=probed_at,
        stored=False,
        score_components=components,
        probe_score=round(sum(c.contribution for c in components), 6),
    )
