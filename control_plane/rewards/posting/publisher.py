"""Posting reward epochs on-chain with the oracle key: propose a root, accept it after the
challenge window, flush subscription revenue into the pool before a budget is computed.

How the pieces meet (each a plain async function the scheduler or a test calls):
- `propose_epoch(services, session, epoch, cumulative, data)` checks the chain, then, in the
  caller's transaction, stores the published data and every leaf with its proof and queues the
  `proposeRoot` call in the oracle's outbox under the key `propose-epoch-<n>`. Data and
  proposal commit together or not at all; the unique key (and the unique epoch row) make a
  second call, concurrent or later, a no-op. The sender sends it once the caller commits.
- `send_oracle_transactions` (a job) runs the oracle's sender: signs, sends, replaces stuck
  transactions and records receipts (control_plane.chain.sender), in short transactions of its
  own.
- `accept_due_roots` (a job) records how earlier proposals ended (mined, accepted, revoked) and
  queues `acceptRoot` (`accept-epoch-<n>`) once the pending root's window has passed.
- `flush_revenue(services, epoch)` moves accrued subscription revenue into the pool and waits
  until that is mined, so the budget read afterwards counts it.
- `post_epoch(...)` proposes and waits for the proposal to be mined (CLI, tests).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.client import hex0x
from control_plane.chain.clock import later_of_clock_and
from control_plane.chain.distributor import (
    DistributorReads,
    DistributorState,
)
from control_plane.chain.oracle_key import load_oracle_account
from control_plane.chain.outbox_repository import OutboxRepository
from control_plane.chain.sender import TransactionSender
from control_plane.db import unit_of_work
from control_plane.errors import ChainUnavailable
from control_plane.jobs import Job, Services
from control_plane.rewards.formula.merkle import RewardTree
from control_plane.rewards.posting.repository import (
    Leaf,
    PostingRepository,
    Publication,
    PublicationContent,
)
from control_plane.settings import RewardPostingSettings, Settings

log = logging.getLogger("nodus.rewards.posting")


class PostingRefused(Exception):
    """The epoch cannot be proposed as asked; `code` says why (the chain is unchanged)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Posting:
    epoch: int
    root: str
    data_hash: str
    total_cumulative: int
    status: str  # queued | proposed | accepted | revoked | failed
    propose_key: str
    queued: bool  # True if this call queued the proposal, False if it was already there

    @classmethod
    def of(cls, publication: Publication, *, queued: bool) -> Posting:
        return cls(
            epoch=publication.epoch,
            root=publication.root,
            data_hash=publication.data_hash,
            total_cumulative=publication.total_cumulative,
            status=publication.status,
            propose_key=publication.propose_key,
            queued=queued,
        )


@dataclass(slots=True)
class AcceptReport:
    proposed: list[int] = field(default_factory=list)  # proposals found mined
    failed: list[int] = field(default_factory=list)  # proposals that never landed
    accepted: list[int] = field(default_factory=list)  # settled: accepted
    revoked: list[int] = field(default_factory=list)  # settled: revoked
    accept_queued: int | None = None  # the epoch whose acceptRoot was queued


def propose_key(epoch: int) -> str:
    return f"propose-epoch-{epoch}"


def accept_key(epoch: int) -> str:
    return f"accept-epoch-{epoch}"


def flush_key(epoch: int) -> str:
    return f"flush-revenue-epoch-{epoch}"


def oracle_sender(services: Services) -> TransactionSender:
    """The oracle's sender (its key from NODUS_ORACLE_PRIVATE_KEY or the keystore)."""
    return TransactionSender.for_services(services)


@dataclass(frozen=True, slots=True)
class _Tree:
    tree: RewardTree
    amounts: dict[str, int]  # lower-case account -> cumulative
    total: int
    data_hash: bytes


def _build(epoch: int, cumulative: Mapping[str, int], data: bytes) -> _Tree:
    if epoch < 1:
        raise PostingRefused("invalid", "epochs start at 1")
    if not data:
        raise PostingRefused("invalid", "the published data is empty")
    try:
        json.loads(data)
    except ValueError:
        raise PostingRefused("invalid", "the published data is not JSON") from None
    amounts: dict[str, int] = {}
    for account, amount in cumulative.items():
        if not is_address(account):
            raise PostingRefused("invalid", f"not an address: {account!r}")
        lowered = account.lower()
        if lowered in amounts:
            raise PostingRefused("invalid", f"{lowered} appears twice")
        amounts[lowered] = int(amount)
    try:
        tree = RewardTree.build(amounts.items())
    except ValueError as exc:
        raise PostingRefused("invalid", str(exc)) from None
    return _Tree(tree, amounts, sum(amounts.values()), keccak(data))


async def _check_chain(
    distributor: DistributorReads,
    state: DistributorState,
    oracle: str,
    epoch: int,
    total: int,
) -> None:
    """What `proposeRoot` would check, with plain reasons, before anything is stored."""
    if state.pending is not None:
        raise PostingRefused(
            "pending_root", f"epoch {state.pending.epoch} is pending; it must settle first"
        )
    if epoch != state.current_epoch + 1:
        raise PostingRefused(
            "wrong_epoch", f"the next epoch is {state.current_epoch + 1}, not {epoch}"
        )
    if total < state.total_cumulative:
        raise PostingRefused(
            "cumulative_decreased",
            f"total {total} is below the accepted total {state.total_cumulative}",
        )
    increase = total - state.total_cumulative
    if increase > state.epoch_budget:
        raise PostingRefused(
            "over_budget", f"the epoch adds {increase}, over the budget {state.epoch_budget}"
        )
    if total > state.total_funded:
        raise PostingRefused(
            "underfunded", f"total {total} exceeds what the pool was funded: {state.total_funded}"
        )
    if not await distributor.is_oracle(oracle):
        raise PostingRefused("not_oracle", f"{oracle} does not hold ORACLE_ROLE")


async def _check_leaves_grow(
    repository: PostingRepository, chain_id: int, state: DistributorState, amounts: dict[str, int]
) -> None:
    """Every leaf of the accepted tree is still there, at least as large: a smaller cumulative
    amount would block that operator's claims (the contract only checks the total)."""
    if state.root_epoch == 0:
        return
    accepted = await repository.publication(chain_id, state.root_epoch)
    if accepted is None or accepted.root != state.current_root:
        raise PostingRefused(
            "unknown_accepted_tree",
            f"the accepted tree of epoch {state.root_epoch} is not stored here; cannot check "
            "that no cumulative amount decreases",
        )
    for account, before in (await repository.amounts(chain_id, state.root_epoch)).items():
        now = amounts.get(account)
        if now is None or now < before:
            raise PostingRefused(
                "leaf_decreased",
                f"{account} had {before} in epoch {state.root_epoch}; the new tree has {now or 0}",
            )


def _leaves(tree: RewardTree) -> list[Leaf]:
    return [
        Leaf(
            account=account.lower(),
            cumulative=tree.amounts[account],
            proof=[hex0x(p) for p in tree.proofs[account]],
        )
        for account in sorted(tree.amounts)
    ]


async def propose_epoch(
    services: Services,
    session: AsyncSession,
    epoch: int,
    cumulative: Mapping[str, int],
    data: bytes,
    *,
    sender: TransactionSender | None = None,
) -> Posting:
    """Queues the proposal of `epoch` (see the module docstring); raises PostingRefused when the
    chain would not take it or the epoch was already posted with other data."""
    sender = sender or oracle_sender(services)
    built = _build(epoch, cumulative, data)
    root, data_hash = hex0x(built.tree.root), hex0x(built.data_hash)
    chain_id = services.chain.chain_id
    repository = PostingRepository(session)

    existing = await repository.publication(chain_id, epoch, lock=True)
    if existing is not None and existing.status != "failed":
        return _same_or_refuse(existing, root, data_hash)

    distributor = services.chain.distributor
    state = await distributor.state()
    await _check_chain(distributor, state, sender.address, epoch, built.total)
    await _check_leaves_grow(repository, chain_id, state, built.amounts)
    calldata = distributor.propose_calldata(epoch, built.tree.root, built.total, built.data_hash)
    content = PublicationContent(
        chain_id=chain_id,
        epoch=epoch,
        data=data,
        data_hash=data_hash,
        root=root,
        total_cumulative=built.total,
        leaf_count=len(built.amounts),
    )
    key = propose_key(epoch)
    if existing is None:
        if not await repository.insert_publication(content, propose_key=key):
            current = await repository.publication(chain_id, epoch)
            assert current is not None
            return _same_or_refuse(current, root, data_hash)  # a concurrent call won
        await repository.insert_leaves(chain_id, epoch, _leaves(built.tree))
        entry, created = await sender.enqueue(session, key, distributor.address, calldata)
        if not created and entry.data != calldata:
            raise PostingRefused(
                "epoch_conflict", f"{key} is already in the outbox with other calldata"
            )
    else:
        # The chain never saw the failed proposal: same epoch number, possibly new content.
        await repository.replace_publication(content)
        await repository.insert_leaves(chain_id, epoch, _leaves(built.tree))
        await sender.rearm(session, key, distributor.address, calldata)
    log.info(
        "reward epoch queued for proposal",
        extra={
            "epoch": epoch,
            "root": root,
            "data_hash": data_hash,
            "total_cumulative": str(built.total),
            "leaves": len(built.amounts),
        },
    )
    publication = await repository.publication(chain_id, epoch)
    assert publication is not None
    return Posting.of(publication, queued=True)


def _same_or_refuse(existing: Publication, root: str, data_hash: str) -> Posting:
    if existing.root == root and existing.data_hash == data_hash:
        return Posting.of(existing, queued=False)
    raise PostingRefused(
        "epoch_conflict",
        f"epoch {existing.epoch} was already posted with root {existing.root} and data hash "
        f"{existing.data_hash}",
    )


async def accept_due_roots(
    services: Services, session: AsyncSession, *, sender: TransactionSender | None = None
) -> AcceptReport:
    """Records how the epochs proposed here ended, and queues `acceptRoot` for a pending root
    whose challenge window has passed (whoever proposed it: only the oracle can). The sender
    sends it after the caller commits."""
    sender = sender or oracle_sender(services)
    distributor = services.chain.distributor
    state = await distributor.state()
    report = await refresh_publications(services, session, state)
    pending = state.pending
    # The window is judged by the later of the wall clock and the head's time, not the head's
    # alone: on an idle chain (anvil automining) no block comes after the window ends, and the
    # acceptRoot transaction is what mines one, with a fresh timestamp. On a chain whose clock
    # still lags, the estimate reverts (ChallengeWindowOpen), the row fails before costing
    # anything, and the next run queues it again (`rearm` below).
    if pending is None or later_of_clock_and(state.block_timestamp).timestamp() < pending.valid_at:
        return report
    key = accept_key(pending.epoch)
    calldata = distributor.accept_calldata()
    entry, created = await sender.enqueue(session, key, distributor.address, calldata)
    if not created and entry.status == "failed" and entry.mined_tx_hash is None:
        # It was refused before it cost anything (e.g. estimated a block too early): again.
        await sender.rearm(session, key, distributor.address, calldata)
        created = True
    if created:
        report.accept_queued = pending.epoch
        log.info("acceptRoot queued", extra={"epoch": pending.epoch, "root": pending.root})
    return report


async def refresh_publications(
    services: Services, session: AsyncSession, state: DistributorState | None = None
) -> AcceptReport:
    """Brings the status of unsettled publications up to date with the outbox and the chain."""
    chain_id = services.chain.chain_id
    distributor = services.chain.distributor
    state = state or await distributor.state()
    repository = PostingRepository(session)
    report = AcceptReport()
    publications = await repository.unsettled(chain_id)
    entries = await OutboxRepository(session).entries_by_keys(
        chain_id, [p.propose_key for p in publications if p.status == "queued"]
    )
    for publication in publications:
        proposed_block = publication.proposed_block
        if publication.status == "queued":
            entry = entries.get(publication.propose_key)
            if entry is None or not entry.final:
                continue
            if entry.status == "failed":
                await repository.mark_failed(chain_id, publication.epoch, error=entry.error)
                report.failed.append(publication.epoch)
                log.warning(
                    "reward epoch proposal failed",
                    extra={"epoch": publication.epoch, "error": entry.error},
                )
                continue
            assert entry.mined_tx_hash is not None
            assert entry.mined_block is not None
            await repository.mark_proposed(
                chain_id, publication.epoch, tx_hash=entry.mined_tx_hash, block=entry.mined_block
            )
            report.proposed.append(publication.epoch)
            proposed_block = entry.mined_block
        outcome = state.settled(publication.epoch)
        if outcome is None:
            continue
        found = await distributor.settlement_tx(publication.epoch, proposed_block or 0)
        await repository.mark_settled(
            chain_id, publication.epoch, status=outcome, tx_hash=found[1] if found else None
        )
        (report.accepted if outcome == "accepted" else report.revoked).append(publication.epoch)
        log.info(f"reward epoch {outcome}", extra={"epoch": publication.epoch})
    return report


async def flush_revenue(
    services: Services,
    epoch: int,
    *,
    sender: TransactionSender | None = None,
    max_seconds: float | None = None,
) -> int:
    """Pays the subscription revenue accrued for rewards into the pool (`flushRevenue`, once per
    epoch: key `flush-revenue-epoch-<n>`) and waits until it is mined, so a budget read next
    counts it. Returns what it moved (0 when nothing had accrued or it ran for this epoch
    already). Commits its own short transactions: the flush must be mined before the caller's
    budget is computed, so it cannot wait for the caller's commit."""
    sender = sender or oracle_sender(services)
    distributor = services.chain.distributor
    accrued = await distributor.accrued_revenue()
    if accrued == 0:
        return 0
    async with unit_of_work(services.sessions) as session:
        entry, created = await sender.enqueue(
            session,
            flush_key(epoch),
            distributor.subscriptions_address,
            distributor.flush_calldata(),
        )
    if not created:
        return 0
    entry = await sender.wait(entry.key, max_seconds)
    if entry.status != "mined":
        raise PostingRefused("flush_failed", f"flushRevenue failed: {entry.error}")
    log.info("subscription revenue flushed", extra={"epoch": epoch, "amount": str(accrued)})
    return accrued


async def post_epoch(
    services: Services,
    epoch: int,
    cumulative: Mapping[str, int],
    data: bytes,
    *,
    sender: TransactionSender | None = None,
    max_seconds: float | None = None,
) -> Posting:
    """`propose_epoch` in its own transaction, then waits until the proposal is mined."""
    sender = sender or oracle_sender(services)
    async with unit_of_work(services.sessions) as session:
        posting = await propose_epoch(services, session, epoch, cumulative, data, sender=sender)
    await sender.wait(posting.propose_key, max_seconds)
    async with unit_of_work(services.sessions) as session:
        await refresh_publications(services, session)
        publication = await PostingRepository(session).publication(services.chain.chain_id, epoch)
    assert publication is not None
    return Posting.of(publication, queued=posting.queued)


async def due_epoch(
    services: Services,
    session: AsyncSession,
    settings: RewardPostingSettings | None = None,
    now: datetime | None = None,
) -> int | None:
    """The epoch to score and propose now, or None: none is pending or in flight here, and the
    last one posted here is at least NODUS_EPOCH_SECONDS old."""
    settings = settings or services.settings.reward_posting
    now = now or datetime.now(UTC)
    state = await services.chain.distributor.state()
    if state.pending is not None:
        return None
    repository = PostingRepository(session)
    if await repository.unsettled(services.chain.chain_id):
        return None
    last = await repository.publication(services.chain.chain_id, state.current_epoch)
    if last is not None and now - last.created_at < timedelta(seconds=settings.epoch_seconds):
        return None
    return state.current_epoch + 1


async def accepted_cumulative(services: Services, session: AsyncSession) -> dict[str, int]:
    """The cumulative amounts of the accepted tree (account -> wei; empty before the first
    accepted epoch): what the next epoch's leaves must build on."""
    state = await services.chain.distributor.state()
    if state.root_epoch == 0:
        return {}
    amounts = await PostingRepository(session).amounts(services.chain.chain_id, state.root_epoch)
    if not amounts:
        raise PostingRefused(
            "unknown_accepted_tree", f"the accepted tree of epoch {state.root_epoch} is not stored"
        )
    return {to_checksum_address(a): v for a, v in amounts.items()}


# Jobs


async def send_oracle_transactions(services: Services, session: AsyncSession) -> None:
    """The oracle sender's job: one pass over its outbox (its own short transactions)."""
    del session  # the sender commits each step itself
    try:
        report = await oracle_sender(services).process()
    except ChainUnavailable:
        log.warning("oracle sender: the chain is unreachable; the next run resumes")
        return
    if report.signed or report.replaced or report.mined or report.failed:
        log.info(
            "oracle sender pass",
            extra={
                "signed": report.signed,
                "replaced": report.replaced,
                "mined": report.mined,
                "failed": report.failed,
            },
        )


async def accept_due_roots_job(services: Services, session: AsyncSession) -> None:
    try:
        await accept_due_roots(services, session)
    except ChainUnavailable:
        log.warning("accepting roots: the chain is unreachable; the next run resumes")


def posting_jobs(settings: Settings) -> dict[str, tuple[float, Job]]:
    """The scheduled jobs of reward posting; none on a replica without the oracle key. Raises
    OracleKeyError if a key is configured but cannot be loaded."""
    oracle = settings.oracle
    if not oracle.configured:
        log.info("no oracle key configured: reward posting jobs are off")
        return {}
    load_oracle_account(oracle)  # a configured key that cannot be loaded stops the start
    posting = settings.reward_posting
    return {
        "oracle_sender": (oracle.tx_send_interval_seconds, send_oracle_transactions),
        "reward_accept": (posting.reward_accept_interval_seconds, accept_due_roots_job),
    }
