"""A chunk of blocks as busy as a popular chain makes: thousands of payments, new subscribers,
renewals of known ones and payments already outdone, recorded in one go exactly as one payment
at a time would (the expiry only grows, the renewed are those whose expiry changed), and a
replay of the chunk changes nothing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.subscriptions.models import Payment, Subscriber
from control_plane.subscriptions.service import PaymentEvent, record_payments

CHAIN_ID = 31337
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# More payments than one INSERT can carry (PostgreSQL stops at 32,767 parameters, 10 a payment).
PAYMENTS = 4_000


@pytest.fixture
async def sessions(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(clean_database)
    yield make_sessionmaker(engine)
    await engine.dispose()


def address() -> str:
    return "0x" + secrets.token_hex(20)


def payment(index: int, subscriber: str, expires_at: datetime) -> PaymentEvent:
    return PaymentEvent(
        tx_hash="0x" + f"{index:064x}",
        log_index=index % 7,
        block_number=1_000 + index // 100,
        block_hash="0x" + f"{1_000 + index // 100:064x}",
        subscriber=subscriber,
        payer=subscriber,
        months=1,
        amount=10 * 10**18,
        expires_at=expires_at,
    )


async def expiries(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple[datetime, ...]]:
    async with unit_of_work(sessions) as session:
        rows = await session.execute(
            select(Subscriber.address, Subscriber.expires_at, Subscriber.lapse_processed_until)
        )
        return {a: (e, lapse) if lapse else (e,) for a, e, lapse in rows}


async def test_a_busy_chunk_is_recorded_as_one_payment_at_a_time_would_be(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    month = timedelta(days=30)
    ahead = [address() for _ in range(50)]  # already paid past this chunk's payments
    behind = [address() for _ in range(50)]  # renew: this chunk pays past what is recorded
    lapsed = [address() for _ in range(10)]  # lapsed, and paid again for a month already over
    async with unit_of_work(sessions) as session:
        session.add_all(Subscriber(address=a, expires_at=NOW + 2 * month) for a in ahead)
        session.add_all(Subscriber(address=a, expires_at=NOW - month) for a in behind)
        session.add_all(Subscriber(address=a, expires_at=NOW - 3 * month) for a in lapsed)

    newcomers = [address() for _ in range(PAYMENTS - 50 - 50 - 10 - 200)]
    twice = newcomers[:200]  # pay twice in the chunk: the later expiry wins, in either order
    chunk = [payment(i, a, NOW + month) for i, a in enumerate(newcomers)]
    chunk += [payment(len(chunk) + i, a, NOW + month) for i, a in enumerate(ahead)]
    chunk += [payment(len(chunk) + i, a, NOW + month) for i, a in enumerate(behind)]
    chunk += [payment(len(chunk) + i, a, NOW - 2 * month) for i, a in enumerate(lapsed)]
    chunk += [payment(len(chunk) + i, a, NOW + 2 * month) for i, a in enumerate(twice)]
    assert len(chunk) == PAYMENTS

    async with unit_of_work(sessions) as session:
        changes = await record_payments(session, CHAIN_ID, chunk, NOW)

    assert changes.count == PAYMENTS
    assert changes.renewed == sorted([*newcomers, *behind, *lapsed])
    recorded = await expiries(sessions)
    assert {a: recorded[a] for a in ahead} == {a: (NOW + 2 * month,) for a in ahead}
    assert {a: recorded[a] for a in behind} == {a: (NOW + month,) for a in behind}
    # Raised into the past: the caller's bump announces it, so it is not announced again.
    assert {a: recorded[a] for a in lapsed} == {a: (NOW - 2 * month,) * 2 for a in lapsed}
    assert {a: recorded[a] for a in twice} == {a: (NOW + 2 * month,) for a in twice}
    assert {a: recorded[a] for a in newcomers[200:]} == {a: (NOW + month,) for a in newcomers[200:]}

    async with unit_of_work(sessions) as session:
        replay = await record_payments(session, CHAIN_ID, chunk, NOW)
        stored = await session.scalar(
            select(func.count()).select_from(Payment).where(Payment.chain_id == CHAIN_ID)
        )
    assert (replay.count, replay.renewed) == (0, [])
    assert stored == PAYMENTS
    assert await expiries(sessions) == recorded
