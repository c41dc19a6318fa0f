"""Every query of the transaction outbox (control_plane.chain.outbox). Never commits.

Rows leave as frozen snapshots (`OutboxEntry`, `Attempt`), so the sender can hold them across its
short transactions without touching detached ORM objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.outbox import FINAL_TX_STATUSES, OutboxTx, TxAttempt, TxSenderKey


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    chain_id: int
    sender: str
    key: str
    to: str
    data: bytes
    value: int
    status: str
    nonce: int | None
    gas_limit: int | None
    error: str | None
    mined_tx_hash: str | None
    mined_block: int | None
    gas_used: int | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_TX_STATUSES

    @classmethod
    def of(cls, row: OutboxTx) -> OutboxEntry:
        return cls(
            id=row.id,
            chain_id=row.chain_id,
            sender=row.sender,
            key=row.idempotency_key,
            to=row.to_address,
            data=bytes(row.data),
            value=int(row.value),
            status=row.status,
            nonce=row.nonce,
            gas_limit=row.gas_limit,
            error=row.error,
            mined_tx_hash=row.mined_tx_hash,
            mined_block=row.mined_block,
            gas_used=row.gas_used,
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    outbox_id: int
    tx_hash: str
    nonce: int
    raw: bytes
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    broadcast_at: datetime | None
    rejected: str | None

    @classmethod
    def of(cls, row: TxAttempt) -> Attempt:
        return cls(
            id=row.id,
            outbox_id=row.outbox_id,
            tx_hash=row.tx_hash,
            nonce=row.nonce,
            raw=bytes(row.raw),
            max_fee_per_gas=int(row.max_fee_per_gas),
            max_priority_fee_per_gas=int(row.max_priority_fee_per_gas),
            broadcast_at=row.broadcast_at,
            rejected=row.rejected,
        )


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Locks

    async def try_lock_sender(self, lock_class: int, lock_id: int) -> bool:
        """The per-key sender lock (a transaction-level advisory lock, two-int key space)."""
        got = await self.session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:class, :id)"),
            {"class": lock_class, "id": lock_id},
        )
        return bool(got)

    async def lock_next_nonce(self, chain_id: int, address: str) -> int:
        """The key's next nonce, its row created at 0 the first time and locked (FOR UPDATE)
        until the transaction ends: nonces are handed out one transaction at a time."""
        await self.session.execute(
            insert(TxSenderKey)
            .values(chain_id=chain_id, address=address, next_nonce=0)
            .on_conflict_do_nothing(index_elements=[TxSenderKey.chain_id, TxSenderKey.address])
        )
        nonce = await self.session.scalar(
            select(TxSenderKey.next_nonce)
            .where(TxSenderKey.chain_id == chain_id, TxSenderKey.address == address)
            .with_for_update()
        )
        assert nonce is not None
        return int(nonce)

    async def set_next_nonce(self, chain_id: int, address: str, next_nonce: int) -> None:
        await self.session.execute(
            update(TxSenderKey)
            .where(TxSenderKey.chain_id == chain_id, TxSenderKey.address == address)
            .values(next_nonce=next_nonce)
        )

    # Outbox rows

    async def insert(
        self, *, chain_id: int, sender: str, key: str, to: str, data: bytes, value: int
    ) -> OutboxEntry | None:
        """A new `built` row; None if the key is already taken (the row is left as it is).
        A concurrent insert of the same key waits for the other transaction, then yields."""
        row_id = await self.session.scalar(
            insert(OutboxTx)
            .values(
                chain_id=chain_id,
                sender=sender,
                idempotency_key=key,
                to_address=to,
                data=data,
                value=value,
                status="built",
            )
            .on_conflict_do_nothing(index_elements=[OutboxTx.chain_id, OutboxTx.idempotency_key])
            .returning(OutboxTx.id)
        )
        if row_id is None:
            return None
        return await self.get(row_id)

    async def get(self, outbox_id: int, *, lock: bool = False) -> OutboxEntry | None:
        statement = select(OutboxTx).where(OutboxTx.id == outbox_id)
        if lock:
            statement = statement.with_for_update()
        row = await self.session.scalar(statement.execution_options(populate_existing=True))
        return OutboxEntry.of(row) if row is not None else None

    async def by_key(self, chain_id: int, key: str, *, lock: bool = False) -> OutboxEntry | None:
        statement = select(OutboxTx).where(
            OutboxTx.chain_id == chain_id, OutboxTx.idempotency_key == key
        )
        if lock:
            statement = statement.with_for_update()
        row = await self.session.scalar(statement.execution_options(populate_existing=True))
        return OutboxEntry.of(row) if row is not None else None

    async def unfinished(self, chain_id: int, sender: str) -> list[OutboxEntry]:
        """The key's rows that are not final: signed ones by nonce, then built ones by age."""
        rows = await self.session.scalars(
            select(OutboxTx)
            .where(
                OutboxTx.chain_id == chain_id,
                OutboxTx.sender == sender,
                OutboxTx.status.in_(("built", "signed", "sent")),
            )
            .order_by(OutboxTx.nonce.asc().nulls_last(), OutboxTx.id)
        )
        return [OutboxEntry.of(row) for row in rows.all()]

    async def mark_signed(self, outbox_id: int, *, nonce: int, gas_limit: int) -> None:
        await self._set(outbox_id, status="signed", nonce=nonce, gas_limit=gas_limit, error=None)

    async def mark_sent(self, outbox_id: int) -> None:
        await self.session.execute(
            update(OutboxTx)
            .where(OutboxTx.id == outbox_id, OutboxTx.status == "signed")
            .values(status="sent", error=None)
        )

    async def mark_final(
        self,
        outbox_id: int,
        *,
        status: str,
        error: str | None,
        tx_hash: str | None = None,
        block: int | None = None,
        gas_used: int | None = None,
    ) -> None:
        await self._set(
            outbox_id,
            status=status,
            error=error,
            mined_tx_hash=tx_hash,
            mined_block=block,
            gas_used=gas_used,
        )

    async def note_error(self, outbox_id: int, error: str) -> None:
        """A passing problem (the node refused a broadcast, fees over the cap): kept for the
        operator to see; the row's state does not change."""
        await self._set(outbox_id, error=error)

    async def rearm(self, outbox_id: int, *, to: str, data: bytes, value: int) -> None:
        """A failed row back to `built` (possibly with new calldata): its old attempts stay as a
        record; it will be signed again with a fresh nonce."""
        await self._set(
            outbox_id,
            status="built",
            to_address=to,
            data=data,
            value=value,
            nonce=None,
            gas_limit=None,
            error=None,
            mined_tx_hash=None,
            mined_block=None,
            gas_used=None,
        )

    async def _set(self, outbox_id: int, **values: object) -> None:
        await self.session.execute(
            update(OutboxTx).where(OutboxTx.id == outbox_id).values(**values)
        )

    # Attempts

    async def attempts(self, outbox_id: int) -> list[Attempt]:
        """Every signed transaction of the row, oldest first."""
        rows = await self.session.scalars(
            select(TxAttempt).where(TxAttempt.outbox_id == outbox_id).order_by(TxAttempt.id)
        )
        return [Attempt.of(row) for row in rows.all()]

    async def add_attempt(
        self,
        *,
        outbox_id: int,
        tx_hash: str,
        nonce: int,
        raw: bytes,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
    ) -> None:
        await self.session.execute(
            insert(TxAttempt).values(
                outbox_id=outbox_id,
                tx_hash=tx_hash,
                nonce=nonce,
                raw=raw,
                max_fee_per_gas=max_fee_per_gas,
                max_priority_fee_per_gas=max_priority_fee_per_gas,
            )
        )

    async def mark_broadcast(self, attempt_id: int, at: datetime) -> None:
        """The first time the node accepted the attempt (later re-sends keep that time)."""
        await self.session.execute(
            update(TxAttempt)
            .where(TxAttempt.id == attempt_id, TxAttempt.broadcast_at.is_(None))
            .values(broadcast_at=at, rejected=None)
        )

    async def mark_rejected(self, attempt_id: int, reason: str) -> None:
        await self.session.execute(
            update(TxAttempt).where(TxAttempt.id == attempt_id).values(rejected=reason)
        )

    async def entries_by_keys(self, chain_id: int, keys: Sequence[str]) -> dict[str, OutboxEntry]:
        if not keys:
            return {}
        rows = await self.session.scalars(
            select(OutboxTx).where(
                OutboxTx.chain_id == chain_id, OutboxTx.idempotency_key.in_(list(keys))
            )
        )
        return {row.idempotency_key: OutboxEntry.of(row) for row in rows.all()}
