"""The prober's rules: a probe round (the control plane's own prober job), accepting signed
samples from external probers, and reading samples back verified. Never commits."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import Forbidden, Invalid, NotFound, Unauthorized
from control_plane.jobs import Services
from control_plane.prober import repository
from control_plane.prober.intake import SampleBudget, rate_limited
from control_plane.prober.models import Prober
from control_plane.prober.probe import Target, health_url, probe_all
from control_plane.prober.schemas import (
    ProbeBatchIn,
    ProbeBatchOut,
    ProberOut,
    ProbeSampleOut,
    ProbeSamplePage,
    ProbeTargetOut,
    ProbeTargetsOut,
)
from control_plane.prober.settings import ProberSettings
from control_plane.prober.signing import Sample, sign_sample, verify_sample
from control_plane.settings import Settings

log = logging.getLogger("nodus.prober")

# A round may be stamped at most this far ahead of the control plane's clock.
MAX_FUTURE_SKEW_SECONDS = 60
_KEY_DERIVATION_TAG = b"nodus/prober-key/v1\x00"


@dataclass(frozen=True, slots=True)
class RoundReport:
    round: int
    prober: str
    probed: int
    answered: int
    stored: int
    skipped: str | None = None


def control_plane_prober(settings: Settings, prober_settings: ProberSettings) -> LocalAccount:
    """The key of the control plane's own prober: NODUS_PROBER_KEY, else one derived from the
    data key (domain-separated keccak256), so every replica signs as the same prober and the
    address survives restarts."""
    if prober_settings.key is not None:
        account: LocalAccount = Account.from_key(prober_settings.key.get_secret_value())
        return account
    seed = keccak(_KEY_DERIVATION_TAG + settings.data_key.get_secret_value().encode())
    derived: LocalAccount = Account.from_key(seed)
    return derived


def targets_of(rows: list[tuple[str, str, str]]) -> list[Target]:
    """Probe targets from `(node_id, endpoint, agent)`; an endpoint that does not parse gets a
    target that fails as `invalid_target` (and so counts as a failed round)."""
    targets = []
    for node_id, endpoint, agent in rows:
        try:
            url = health_url(endpoint)
        except ValueError:
            url = "invalid:"
        targets.append(Target(node_id, url, agent))
    return targets


async def run_probe_round(
    session: AsyncSession,
    chain_id: int,
    account: LocalAccount,
    prober_settings: ProberSettings,
    *,
    now: int | None = None,
    tracer: Tracer | None = None,
) -> RoundReport:
    """One round of `account`'s prober: every live node Active on-chain, a few samples each,
    signed and stored. A revoked prober does nothing."""
    round_at = int(time.time()) if now is None else now
    address = account.address.lower()
    prober = await repository.add_prober_if_missing(session, address, prober_settings.name)
    if prober.revoked_at is not None:
        log.warning("prober revoked; not probing", extra={"prober": address})
        return RoundReport(round_at, address, 0, 0, 0, skipped="revoked")
    targets = targets_of(await repository.probe_targets(session))
    results = await probe_all(
        targets,
        attempts=prober_settings.samples,
        request_timeout=prober_settings.timeout_seconds,
        concurrency=prober_settings.concurrency,
        allow_private=prober_settings.allow_private_targets,
        tracer=tracer,
    )
    signed: list[tuple[Sample, str]] = []
    for node_id, result in sorted(results.items()):
        sample = Sample(address, node_id, round_at, result.attempts, result.rtt_us, result.error)
        signed.append((sample, sign_sample(account, sample, chain_id)))
    stored = await repository.insert_samples(session, signed)
    answered = sum(1 for sample, _ in signed if sample.answered)
    log.info(
        "probe round",
        extra={"prober": address, "probed": len(signed), "answered": answered, "stored": stored},
    )
    return RoundReport(round_at, address, len(signed), answered, stored)


async def probe_round(services: Services, session: AsyncSession) -> None:
    """The scheduler's job: one round of the control plane's own prober (NODUS_PROBER_*)."""
    prober_settings = services.settings.prober
    if not prober_settings.enabled:
        return
    account = control_plane_prober(services.settings, prober_settings)
    await run_probe_round(
        session, services.settings.chain_id, account, prober_settings, tracer=services.tracer
    )


async def targets(session: AsyncSession, chain_id: int) -> ProbeTargetsOut:
    found = targets_of(await repository.probe_targets(session))
    return ProbeTargetsOut(
        chain_id=chain_id,
        targets=[ProbeTargetOut(node_id=t.node_id, url=t.url, agent=t.agent) for t in found],
    )


async def accept_samples(
    session: AsyncSession,
    chain_id: int,
    batch: ProbeBatchIn,
    prober_settings: ProberSettings,
    budget: SampleBudget,
    *,
    now: int | None = None,
) -> ProbeBatchOut:
    """Stores a batch of signed samples from allow-listed probers. The body is the credential:
    every sample must carry its prober's signature (else 401), every prober must be allow-listed
    and not revoked (else 403), every round recent (else 422). Unknown nodes are skipped and
    listed; samples already stored are counted as duplicates (a replayed post is harmless).

    Cheap checks come first and signatures last (intake.py): a batch from a prober that is not
    allow-listed, a replayed batch and samples for unknown nodes cost no signature recovery,
    and recovery stops at the first bad signature."""
    clock = int(time.time()) if now is None else now
    samples: list[tuple[Sample, str]] = []
    for index, item in enumerate(batch.samples):
        if not clock - prober_settings.max_sample_age_seconds <= item.round:
            raise Invalid(
                f"samples[{index}]: round {item.round} is older than "
                f"{prober_settings.max_sample_age_seconds} s"
            )
        if item.round > clock + MAX_FUTURE_SKEW_SECONDS:
            raise Invalid(f"samples[{index}]: round {item.round} is in the future")
        sample = Sample(
            prober=item.prober,
            node_id=item.node_id,
            round=item.round,
            attempts=item.attempts,
            rtt_us=tuple(item.rtt_us),
            error=item.error,
        )
        samples.append((sample, item.signature))

    probers = {sample.prober for sample, _ in samples}
    allowed = await repository.active_probers(session, probers)
    refused = sorted(probers - allowed)
    if refused:
        raise Forbidden(f"not an allow-listed prober: {', '.join(refused)}")

    known = await repository.known_nodes(session, {sample.node_id for sample, _ in samples})
    keys = [(s.prober, s.node_id, s.round) for s, _ in samples if s.node_id in known]
    stored = await repository.stored_keys(session, keys)
    fresh: dict[tuple[str, str, int], tuple[int, Sample, str]] = {}
    for index, (sample, signature) in enumerate(samples):
        key = (sample.prober, sample.node_id, sample.round)
        if sample.node_id in known and key not in stored and key not in fresh:
            fresh[key] = (index, sample, signature)

    per_prober = Counter(sample.prober for _, sample, _ in fresh.values())
    for prober, count in sorted(per_prober.items()):
        wait = budget.wait(prober, count)
        if wait > 0:
            raise rate_limited(wait, f"prober {prober} posted too many samples")
    for index, sample, signature in fresh.values():
        if not verify_sample(sample, chain_id, signature):
            raise Unauthorized(f"samples[{index}]: the signature is not the prober's")
    for prober, count in per_prober.items():
        budget.spend(prober, count)

    storable = [(sample, signature) for _, sample, signature in fresh.values()]
    accepted = await repository.insert_samples(session, storable)
    return ProbeBatchOut(
        accepted=accepted,
        duplicates=len(keys) - accepted,
        unknown_nodes=sorted({s.node_id for s, _ in samples} - known),
    )


async def verified_samples(
    session: AsyncSession, chain_id: int, start: datetime, end: datetime
) -> list[Sample]:
    """The samples of rounds in `[start, end)` from probers not revoked, each signature checked
    on read: a row whose signature does not recover to its prober (a tampered database) is
    dropped and logged."""
    kept: list[Sample] = []
    for stored in await repository.samples_between(session, start, end):
        if verify_sample(stored.sample, chain_id, stored.signature):
            kept.append(stored.sample)
        else:
            log.error(
                "probe sample with a bad signature ignored",
                extra={"sample_id": stored.id, "prober": stored.sample.prober},
            )
    return kept


def _encode_cursor(round_at: datetime, sample_id: int) -> str:
    raw = json.dumps([round_at.isoformat(), sample_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        round_at, sample_id = json.loads(raw)
        before = datetime.fromisoformat(round_at)
        if before.tzinfo is None or not isinstance(sample_id, int):
            raise ValueError("not a cursor")
        return before, sample_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Invalid("cursor: not a cursor this API returned") from exc


async def node_samples(
    session: AsyncSession, chain_id: int, node_id: str, cursor: str | None, limit: int
) -> ProbeSamplePage:
    """One node's samples, newest first, each verified on read."""
    if not await repository.known_nodes(session, [node_id]):
        raise NotFound("no such node")
    before = _decode_cursor(cursor) if cursor else None
    rows = await repository.node_samples(session, node_id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        ProbeSampleOut(
            prober=row.sample.prober,
            node_id=row.sample.node_id,
            round=row.sample.round,
            round_at=row.round_at,
            attempts=row.sample.attempts,
            rtt_us=list(row.sample.rtt_us),
            error=row.sample.error,
            signature=row.signature,
            verified=verify_sample(row.sample, chain_id, row.signature),
        )
        for row in rows
    ]
    next_cursor = _encode_cursor(rows[-1].round_at, rows[-1].id) if more else None
    return ProbeSamplePage(items=items, next_cursor=next_cursor)


def prober_out(prober: Prober) -> ProberOut:
    return ProberOut(
        address=prober.address,
        name=prober.name,
        created_at=prober.created_at,
        revoked_at=prober.revoked_at,
        active=prober.revoked_at is None,
    )


async def list_probers(session: AsyncSession) -> list[ProberOut]:
    return [prober_out(p) for p in await repository.list_probers(session)]


async def put_prober(session: AsyncSession, address: str, name: str) -> ProberOut:
    return prober_out(await repository.put_prober(session, address, name))


async def revoke_prober(session: AsyncSession, address: str) -> ProberOut:
    prober = await repository.revoke_prober(session, address)
    if prober is None:
        raise NotFound("no such prober")
    return prober_out(prober)
