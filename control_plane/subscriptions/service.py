"""Subscriptions: payments as the chain indexer finds them (and takes them back on a reorg),
and the caller's subscription status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.jobs import Services
from control_plane.subscriptions.expiry import (
    NEVER,
    current_expiry,
    record_expiry,
    record_grown_expiries,
)
from control_plane.subscriptions.repository import PaymentRepository
from control_plane.subscriptions.schemas import PaymentOut, SubscriptionOut


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A decoded `Subscribed` event and where it sits on the chain."""

    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    subscriber: str  # lower-case
    payer: str  # lower-case
    months: int
    amount: int  # NDS wei
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentChanges:
    count: int  # payments added or removed
    renewed: list[str]  # subscribers whose live configs are back in their nodes' peer sets


async def record_payments(
    session: AsyncSession, chain_id: int, payments: Sequence[PaymentEvent], now: datetime
) -> PaymentChanges:
    """Stores new payments (idempotent: keyed by chain id, tx hash and log index) and raises
    their subscribers' expiries to the latest one paid. The caller bumps the nodes of the
    subscribers it reports renewed (`expiry.bump_nodes_of`), once, when it is done."""
    if not payments:
        return PaymentChanges(0, [])
    added = await PaymentRepository(session).insert_many(
        [
            {
                "chain_id": chain_id,
                "tx_hash": p.tx_hash,
                "log_index": p.log_index,
                "block_number": p.block_number,
                "block_hash": p.block_hash,
                "subscriber": p.subscriber,
                "payer": p.payer,
                "months": p.months,
                "amount": p.amount,
                "expires_at": p.expires_at,
            }
            for p in payments
        ]
    )
    latest: dict[str, datetime] = {}
    for payment in payments:
        latest[payment.subscriber] = max(latest.get(payment.subscriber, NEVER), payment.expires_at)
    return PaymentChanges(added, await record_grown_expiries(session, latest, now))


async def rollback_payments(
    session: AsyncSession, chain_id: int, after_block: int, now: datetime
) -> PaymentChanges:
    """Deletes payments in blocks after `after_block` (a reorg dropped them) and sets each
    affected subscriber's expiry to that of its latest remaining payment (NEVER if none is
    left). Every changed subscriber is returned, for its nodes to be bumped once."""
    repository = PaymentRepository(session)
    deleted = await repository.delete_after_block(chain_id, after_block)
    renewed = []
    for address in sorted(set(deleted)):
        expiry = await repository.latest_expiry(chain_id, address)
        if await record_expiry(session, address, expiry or NEVER, now, only_grow=False):
            renewed.append(address)
    return PaymentChanges(len(deleted), renewed)


async def subscription_status(
    session: AsyncSession,
    services: Services,
    address: str,
    *,
    limit: int,
    offset: int,
) -> SubscriptionOut:
    """Expiry from the indexer's mirror (the chain once when the mirror says unpaid or lapsed),
    price from the chain (cached a few seconds, the last one kept while the chain is
    unreachable), payments from the index, newest first; a payment is `confirmed` once
    `services.settings.confirmations` blocks have been mined on top of its block."""
    address = address.lower()
    chain, max_age = services.chain, services.settings.expiry_cache_seconds
    now = await services.clock.now(chain, services.settings.chain_clock_seconds)
    head = services.clock.head_number  # None: the chain was never reached, all are pending
    expires_at = await current_expiry(
        session, chain, address, max_age, services.chain_reads, now=now
    )
    price = await services.chain_reads.price(chain, max_age)
    payments = await PaymentRepository(session).history(
        chain.chain_id, address, limit=limit, offset=offset
    )
    return SubscriptionOut(
        address=address,
        active=expires_at is not None and expires_at > now,
        expires_at=expires_at,
        price_per_period=str(price),
        payments=[
            PaymentOut(
                tx_hash=p.tx_hash,
                log_index=p.log_index,
                block_number=p.block_number,
                months=p.months,
                amount=str(int(p.amount)),
                status=(
                    "confirmed"
                    if head is not None and head - p.block_number >= services.settings.confirmations
                    else "pending"
                ),
            )
            for p in payments
        ],
    )
