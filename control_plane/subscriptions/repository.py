"""Every query of the subscriptions domain: payments (append-only, keyed by chain position) and
subscribers' expiries. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, any_, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from control_plane.device_configs import DeviceConfig
from control_plane.subscriptions.models import Payment, Subscriber


@dataclass(frozen=True, slots=True)
class SubscriberState:
    expires_at: datetime
    lapse_processed_until: datetime | None


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> int:
        """Inserts payments that are not there yet (keyed by chain id, tx hash, log index);
        returns how many were new."""
        if not rows:
            return 0
        # A bulk insert (SQLAlchemy sends it as multi-row statements of a bounded size): one
        # statement of every row stops at PostgreSQL's 32,767 parameters, 3,276 payments, and
        # a chunk of blocks as busy as that would stop the indexer for good.
        inserted = await self.session.scalars(
            insert(Payment)
            .on_conflict_do_nothing(
                index_elements=[Payment.chain_id, Payment.tx_hash, Payment.log_index]
            )
            .returning(Payment.log_index),
            list(rows),
        )
        return len(inserted.all())

    async def delete_after_block(self, chain_id: int, block: int) -> list[str]:
        """Deletes payments in blocks after `block`; returns the subscriber of each."""
        subscribers = await self.session.scalars(
            delete(Payment)
            .where(Payment.chain_id == chain_id, Payment.block_number > block)
            .returning(Payment.subscriber)
        )
        return list(subscribers.all())

    async def latest_expiry(self, chain_id: int, subscriber: str) -> datetime | None:
        """The expiry set by the subscriber's latest payment (the chain's expiry only grows)."""
        return await self.session.scalar(
            select(Payment.expires_at)
            .where(Payment.chain_id == chain_id, Payment.subscriber == subscriber)
            .order_by(Payment.block_number.desc(), Payment.log_index.desc())
            .limit(1)
        )

    async def history(
        self, chain_id: int, subscriber: str, *, limit: int, offset: int
    ) -> Sequence[Payment]:
        """The subscriber's payments, newest first."""
        rows = await self.session.scalars(
            select(Payment)
            .where(Payment.chain_id == chain_id, Payment.subscriber == subscriber)
            .order_by(Payment.block_number.desc(), Payment.log_index.desc())
            .limit(limit)
            .offset(offset)
        )
        return rows.all()


class SubscriberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, address: str, *, lock: bool = False) -> SubscriberState | None:
        """The subscriber's row (`lock`: locked until the transaction ends)."""
        statement = select(Subscriber.expires_at, Subscriber.lapse_processed_until).where(
            Subscriber.address == address
        )
        if lock:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else SubscriberState(row[0], row[1])

    async def expiries(
        self, addresses: Sequence[str], *, lock: bool = False
    ) -> dict[str, datetime]:
        """The recorded expiry of each of `addresses` that has a row (`lock`: the rows locked
        until the transaction ends, in address order, as every locker of several takes them)."""
        statement = (
            select(Subscriber.address, Subscriber.expires_at)
            .where(_among(Subscriber.address, addresses))
            .order_by(Subscriber.address)
        )
        if lock:
            statement = statement.with_for_update()
        return {
            address: expires_at for address, expires_at in await self.session.execute(statement)
        }

    async def create_many(self, expiries: Mapping[str, datetime]) -> set[str]:
        """Inserts the subscribers, in address order; returns those inserted (not those
        another transaction inserted first)."""
        if not expiries:
            return set()
        created = await self.session.scalars(
            insert(Subscriber)
            .on_conflict_do_nothing(index_elements=[Subscriber.address])
            .returning(Subscriber.address),
            [{"address": a, "expires_at": expiries[a]} for a in sorted(expiries)],
        )
        return set(created.all())

    async def set_expiries(self, expiries: Mapping[str, datetime]) -> None:
        """Sets each subscriber's expiry (rows the caller has locked)."""
        if expiries:
            await self.session.execute(
                update(Subscriber),
                [{"address": a, "expires_at": expiries[a]} for a in sorted(expiries)],
            )

    async def create(self, address: str, expires_at: datetime) -> bool:
        """Inserts the subscriber; False if another transaction did first."""
        created = await self.session.scalar(
            insert(Subscriber)
            .values(address=address, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=[Subscriber.address])
            .returning(Subscriber.address)
        )
        return created is not None

    async def set_expiry(self, address: str, expires_at: datetime) -> None:
        await self.session.execute(
            update(Subscriber).where(Subscriber.address == address).values(expires_at=expires_at)
        )

    async def lock_unprocessed_lapses(self, now: datetime, limit: int) -> list[str]:
        """Subscribers whose current expiry has passed and whose lapse is not yet announced,
        locked (rows another transaction holds are left for the next run)."""
        rows = await self.session.scalars(
            select(Subscriber.address)
            .where(
                Subscriber.expires_at <= now,
                (Subscriber.lapse_processed_until.is_(None))
                | (Subscriber.lapse_processed_until < Subscriber.expires_at),
            )
            .order_by(Subscriber.address)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def ahead_of_payments(
        self, chain_id: int, updated_before: datetime, limit: int
    ) -> list[str]:
        """Subscribers whose recorded expiry is later than their latest indexed payment's (or
        who have none) and has been for a while: an expiry read straight from the chain that
        the indexer never confirmed (a reorg took the payment) stays there otherwise."""
        latest = (
            select(func.max(Payment.expires_at))
            .where(Payment.chain_id == chain_id, Payment.subscriber == Subscriber.address)
            .correlate(Subscriber)
            .scalar_subquery()
        )
        rows = await self.session.scalars(
            select(Subscriber.address)
            .where(
                Subscriber.expires_at > func.coalesce(latest, datetime.fromtimestamp(0, UTC)),
                Subscriber.updated_at < updated_before,
            )
            .order_by(Subscriber.address)
            .limit(limit)
        )
        return list(rows)

    async def mark_lapses_processed(self, addresses: Sequence[str]) -> None:
        await self.session.execute(
            update(Subscriber)
            .where(_among(Subscriber.address, addresses))
            .values(lapse_processed_until=Subscriber.expires_at)
        )

    async def live_configs_by_node(self, subscribers: Sequence[str]) -> dict[str, list[uuid.UUID]]:
        """The live (unrevoked) configs of any of `subscribers`, by node, the nodes sorted (the
        order in which their revisions are bumped, so concurrent bumpers never deadlock)."""
        if not subscribers:
            return {}
        rows = await self.session.execute(
            select(DeviceConfig.node_id, DeviceConfig.id)
            .where(_among(DeviceConfig.subscriber, subscribers), DeviceConfig.revoked_at.is_(None))
            .order_by(DeviceConfig.node_id, DeviceConfig.id)
        )
        by_node: dict[str, list[uuid.UUID]] = {}
        for node_id, config_id in rows:
            by_node.setdefault(node_id, []).append(config_id)
        return by_node


def _among(column: InstrumentedAttribute[str], values: Sequence[str]) -> ColumnElement[bool]:
    """`column = ANY($1)`: one array parameter however many values (an IN list takes one
    parameter each, and PostgreSQL stops at 32,767)."""
    return column == any_(literal(list(values), ARRAY(String)))
