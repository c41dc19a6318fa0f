"""The reward epoch job: when an epoch is due, flush subscription revenue into the pool, score
every node from probe samples and agent reports, split the on-chain budget, record the scores and
queue the proposal of the root (the oracle sender broadcasts it; `reward_accept` accepts it after
the challenge window). Runs once across replicas (advisory lock) and never posts an epoch twice
(the posting outbox's idempotency key)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import ChainUnavailable
from control_plane.jobs import Services
from control_plane.rewards.formula.epoch import EpochResult
from control_plane.rewards.posting.gather import build_epoch
from control_plane.rewards.posting.publisher import (
    PostingRefused,
    accepted_cumulative,
    due_epoch,
    flush_revenue,
    propose_epoch,
)
from control_plane.rewards.repository import last_scored_end, save_epoch_scores

log = logging.getLogger("nodus.rewards")


async def score_and_propose(
    services: Services, session: AsyncSession, *, now: datetime | None = None
) -> EpochResult | None:
    """One run of the epoch job; returns the epoch it queued, or None when none was due or it
    could not be posted (logged with the reason)."""
    epoch = await due_epoch(services, session, now=now)
    if epoch is None:
        return None
    end = now or datetime.now(UTC)
    # Epochs tile time: each starts where the last scored one ended (a late run scores the gap
    # too); the first covers one epoch length.
    previous_end = await last_scored_end(session, services.chain.chain_id, epoch)
    start = previous_end or end - timedelta(seconds=services.settings.reward_posting.epoch_seconds)
    await flush_revenue(services, epoch)
    state = await services.chain.distributor.state()
    previous = await accepted_cumulative(services, session)
    result = await build_epoch(
        session, services.chain, epoch, start, end, state.epoch_budget, previous
    )
    if result.probe_rounds == 0:
        # Uptime comes only from probes: an epoch nobody measured would score every node 0.
        log.warning("no probe rounds in the epoch: not posting it", extra={"epoch": epoch})
        return None
    if not result.cumulative:
        log.info("no operator has earned anything yet: nothing to post", extra={"epoch": epoch})
        return None
    await save_epoch_scores(session, result)
    await propose_epoch(services, session, epoch, result.cumulative, result.data)
    log.info(
        "reward epoch queued",
        extra={"epoch": epoch, "budget": str(result.budget), "root": result.root},
    )
    return result


async def reward_epoch_job(services: Services, session: AsyncSession) -> None:
    try:
        await score_and_propose(services, session)
    except ChainUnavailable:
        log.warning("reward epoch: the chain is unreachable; the next run resumes")
    except PostingRefused as exc:
        log.error("reward epoch refused", extra={"code": exc.code, "reason": str(exc)})
