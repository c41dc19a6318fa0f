"""The transaction sender of a control-plane key (the reward oracle): the outbox
(control_plane.chain.outbox) driven to the chain, safe across crashes and replicas.

- Enqueue: a logical action is a `built` outbox row under an idempotency key, unique per chain,
  written in the caller's transaction (so the epoch's data and its proposal commit together) or in
  a transaction of its own (`submit`). A second enqueue of the key returns the first row.
- Sign: under the key's nonce row lock (SELECT ... FOR UPDATE), the call is estimated (a call
  that would revert fails here, using no nonce), given EIP-1559 fees and the next nonce (the
  larger of the stored one and the chain's pending count), signed, and its raw bytes and hash are
  COMMITTED before anything is broadcast. A crash after this point re-sends those same bytes.
- Broadcast, receipt, replacement: each pass looks at every unfinished row of the key, oldest
  nonce first, and decides from the chain alone: a receipt of any of its attempts -> mined (or
  failed if it reverted); its nonce used while none of its attempts was mined -> failed; the node
  does not know it (never sent, or dropped) and the nonce is still free -> the stored raw bytes
  are sent again; pending for longer than NODUS_TX_STUCK_SECONDS -> a replacement with the same
  nonce and both fee caps raised by at least 12.5%.

A pass holds a per-key advisory lock, so one sender works a key at a time across replicas, and
every state change is its own short transaction: durable before the next step talks to the chain,
which a job's single long transaction could not give. Reconciliation after a restart is simply the
first pass (`reconcile` runs one without signing anything new).

The key comes from NODUS_ORACLE_PRIVATE_KEY or an encrypted keystore file; it is held in a
`SecretStr` and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from eth_account.signers.local import LocalAccount
from opentelemetry.trace import NoOpTracer, Tracer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError

from control_plane.chain.caches import KeystoreCache
from control_plane.chain.client import ChainReader, hex0x
from control_plane.chain.oracle_key import load_oracle_account
from control_plane.chain.outbox_repository import Attempt, OutboxEntry, OutboxRepository
from control_plane.chain.reverts import RevertDecoder, describe_revert
from control_plane.chain.tx_rpc import Receipt, TxRejected, TxRpc
from control_plane.db import unit_of_work
from control_plane.paths import DEFAULT_ARTIFACTS_DIR
from control_plane.settings import OracleSettings, Settings

log = logging.getLogger("nodus.sender")

T = TypeVar("T")

GWEI: Final = 10**9
SENDER_LOCK_CLASS: Final = 0x6E6F6475  # "nodu": the advisory-lock class of sender keys
_ALREADY_KNOWN: Final = ("already known", "already imported", "known transaction")
_NONCE_USED: Final = ("nonce too low", "nonce has already been used", "nonce is too low")


class SenderContext(Protocol):
    """What the sender needs from the app's runtime (control_plane.jobs.Services has it): the
    chain adapter sits below the jobs layer, so it names the shape instead of importing it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def chain(self) -> ChainReader: ...

    @property
    def keystores(self) -> KeystoreCache: ...

    @property
    def tracer(self) -> Tracer: ...


# The sender


def bump(value: int, bps: int) -> int:
    """`value` raised by at least `bps` basis points (rounded up), and by at least 1 wei."""
    return value + max(1, -(-value * bps // 10_000))


@dataclass(slots=True)
class PassReport:
    """What one pass did, by idempotency key."""

    skipped: bool = False  # another sender held the key
    signed: list[str] = field(default_factory=list)
    broadcast: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    mined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class TxTimeout(Exception):
    """The transaction is not final yet; it stays in the outbox and later passes finish it."""

    def __init__(self, entry: OutboxEntry) -> None:
        super().__init__(f"{entry.key} is still {entry.status}")
        self.entry = entry


def _lock_id(chain_id: int, address: str) -> int:
    value = zlib.crc32(f"{chain_id}:{address}".encode())
    return value - 2**32 if value >= 2**31 else value  # a signed int4


class TransactionSender:
    """Sends one key's outbox to the chain (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rpc: TxRpc,
        account: LocalAccount,
        *,
        chain_id: int,
        settings: OracleSettings,
        confirmations: int = 0,
        artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR,
        clock: Callable[[], datetime] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.sessions = sessions
        self.tracer = tracer or NoOpTracer()
        self.rpc = rpc
        self._account = account  # the key: never logged, never in a repr
        self.address = account.address.lower()
        self.chain_id = chain_id
        self.settings = settings
        self.confirmations = confirmations
        self.artifacts_dir = artifacts_dir
        self.reverts = RevertDecoder(artifacts_dir)
        self.now = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"TransactionSender(chain_id={self.chain_id}, address={self.address})"

    @classmethod
    def for_services(
        cls,
        services: SenderContext,
        settings: OracleSettings | None = None,
        account: LocalAccount | None = None,
    ) -> TransactionSender:
        """The oracle's sender over the app's database and chain connection."""
        settings = settings or services.settings.oracle
        account = account or load_oracle_account(settings, services.keystores)
        return cls(
            services.sessions,
            services.chain.transaction_rpc(),
            account,
            chain_id=services.chain.chain_id,
            settings=settings,
            confirmations=services.settings.confirmations,
            artifacts_dir=services.settings.artifacts_dir,
            tracer=services.tracer,
        )

    # Enqueueing (in the caller's transaction, or a short one of its own)

    async def enqueue(
        self, session: AsyncSession, key: str, to: str, data: bytes, value: int = 0
    ) -> tuple[OutboxEntry, bool]:
        """The outbox row of `key`, created `built` if it is new (True) in the caller's
        transaction; an existing row is returned as it is (False)."""
        repository = OutboxRepository(session)
        entry = await repository.insert(
            chain_id=self.chain_id,
            sender=self.address,
            key=key,
            to=to.lower(),
            data=data,
            value=value,
        )
        if entry is not None:
            log.info("transaction queued", extra={"key": key, "to": to.lower()})
            return entry, True
        existing = await repository.by_key(self.chain_id, key)
        assert existing is not None
        return existing, False

    async def submit(self, key: str, to: str, data: bytes, value: int = 0) -> OutboxEntry:
        """`enqueue` in a transaction of its own, committed when this returns."""
        async with unit_of_work(self.sessions) as session:
            entry, _ = await self.enqueue(session, key, to, data, value)
        return entry

    async def rearm(
        self, session: AsyncSession, key: str, to: str, data: bytes, value: int = 0
    ) -> OutboxEntry | None:
        """Puts a failed row of `key` back to `built` (with this calldata) in the caller's
        transaction; None if there is no such row, the row unchanged if it has not failed."""
        repository = OutboxRepository(session)
        entry = await repository.by_key(self.chain_id, key, lock=True)
        if entry is None or entry.status != "failed":
            return entry
        await repository.rearm(entry.id, to=to.lower(), data=data, value=value)
        log.info("failed transaction queued again", extra={"key": key, "error": entry.error})
        return await repository.get(entry.id)

    async def entry(self, key: str) -> OutboxEntry | None:
        async with unit_of_work(self.sessions) as session:
            return await OutboxRepository(session).by_key(self.chain_id, key)

    async def attempts(self, key: str) -> list[Attempt]:
        async with unit_of_work(self.sessions) as session:
            repository = OutboxRepository(session)
            entry = await repository.by_key(self.chain_id, key)
            return [] if entry is None else await repository.attempts(entry.id)

    # Passes

    async def process(self) -> PassReport:
        """One pass: finishes what is in flight, then signs and sends what is queued."""
        return await self._pass(sign_new=True)

    async def reconcile(self) -> PassReport:
        """One pass over what is in flight only (after a restart): receipts recorded, dropped
        transactions re-sent as stored, stuck ones replaced; nothing new is signed."""
        return await self._pass(sign_new=False)

    async def wait(self, key: str, max_seconds: float | None = None) -> OutboxEntry:
        """Runs passes until `key` is mined or failed; TxTimeout after `max_seconds` (it
        stays queued). Another replica's sender may be the one that finishes it."""
        limit = self.settings.tx_wait_timeout_seconds if max_seconds is None else max_seconds
        deadline = time.monotonic() + limit
        while True:
            entry = await self.entry(key)
            if entry is None:
                raise KeyError(key)
            if entry.final:
                return entry
            await self.process()
            entry = await self.entry(key)
            assert entry is not None
            if entry.final:
                return entry
            if time.monotonic() >= deadline:
                raise TxTimeout(entry)
            await asyncio.sleep(self.settings.tx_poll_seconds)

    async def _pass(self, *, sign_new: bool) -> PassReport:
        report = PassReport()
        async with self.sessions() as lock_session, lock_session.begin():
            locked = await OutboxRepository(lock_session).try_lock_sender(
                SENDER_LOCK_CLASS, _lock_id(self.chain_id, self.address)
            )
            if not locked:
                report.skipped = True
                return report
            async with unit_of_work(self.sessions) as session:
                entries = await OutboxRepository(session).unfinished(self.chain_id, self.address)
            for entry in entries:
                if entry.status != "built":
                    await self._advance(entry, report)
            if sign_new:
                for entry in entries:
                    if entry.status == "built":
                        signed = await self._sign(entry, report)
                        if signed is not None:
                            await self._broadcast(*signed, report)
        return report

    async def _advance(self, entry: OutboxEntry, report: PassReport) -> None:
        """One signed or sent row, decided from the chain."""
        assert entry.nonce is not None
        attempts = await self.attempts(entry.key)
        if not attempts:  # pragma: no cover - signing writes both in one transaction
            return
        found = await self._receipt(attempts)
        if found is None and await self.rpc.nonce(self.address, "latest") > entry.nonce:
            # The nonce is used: by one of ours mined since we looked, or by another transaction.
            found = await self._receipt(attempts)
            if found is None:
                await self._final(
                    entry,
                    report,
                    status="failed",
                    error=f"nonce {entry.nonce} was used by another transaction",
                )
                return
        if found is not None:
            attempt, receipt = found
            if await self._deep_enough(receipt):
                await self._record_receipt(entry, attempt, receipt, report)
            return

        live = self._live(attempts)
        if entry.status == "signed" or live.broadcast_at is None:
            await self._broadcast(entry, live, report)
            return
        if not await self.rpc.is_known(live.tx_hash):
            log.warning(
                "transaction dropped; sending the stored one again",
                extra={"key": entry.key, "nonce": entry.nonce, "tx_hash": live.tx_hash},
            )
            await self._broadcast(entry, live, report)
            return
        elapsed = (self.now() - live.broadcast_at).total_seconds()
        if elapsed >= self.settings.tx_stuck_seconds:
            await self._replace(entry, attempts, report)

    @staticmethod
    def _live(attempts: list[Attempt]) -> Attempt:
        """The newest attempt the node did not refuse (the one to keep sending)."""
        accepted = [a for a in attempts if a.rejected is None]
        return (accepted or attempts)[-1]

    async def _receipt(self, attempts: list[Attempt]) -> tuple[Attempt, Receipt] | None:
        for attempt in reversed(attempts):
            receipt = await self.rpc.receipt(attempt.tx_hash)
            if receipt is not None:
                return attempt, receipt
        return None

    async def _deep_enough(self, receipt: Receipt) -> bool:
        if self.confirmations <= 0:
            return True
        return await self.rpc.block_number() - receipt.block_number >= self.confirmations

    async def _record_receipt(
        self, entry: OutboxEntry, attempt: Attempt, receipt: Receipt, report: PassReport
    ) -> None:
        ok = receipt.status == 1
        await self._final(
            entry,
            report,
            status="mined" if ok else "failed",
            error=None if ok else f"reverted in block {receipt.block_number}",
            tx_hash=attempt.tx_hash,
            block=receipt.block_number,
            gas_used=receipt.gas_used,
        )

    async def _final(
        self,
        entry: OutboxEntry,
        report: PassReport,
        *,
        status: str,
        error: str | None,
        tx_hash: str | None = None,
        block: int | None = None,
        gas_used: int | None = None,
    ) -> None:
        async with unit_of_work(self.sessions) as session:
            repository = OutboxRepository(session)
            current = await repository.get(entry.id, lock=True)
            if current is None or current.final:
                return
            await repository.mark_final(
                entry.id,
                status=status,
                error=error,
                tx_hash=tx_hash,
                block=block,
                gas_used=gas_used,
            )
        (report.mined if status == "mined" else report.failed).append(entry.key)
        with self.tracer.start_as_current_span("oracle tx final") as span:
            span.set_attribute("nodus.tx.key", entry.key)
            span.set_attribute("nodus.tx.outcome", status)
            if entry.nonce is not None:
                span.set_attribute("nodus.tx.nonce", entry.nonce)
            if tx_hash is not None:
                span.set_attribute("nodus.tx.hash", tx_hash)
        extra = {
            "key": entry.key,
            "nonce": entry.nonce,
            "tx_hash": tx_hash,
            "block": block,
            "error": error,
        }
        if status == "mined":
            log.info("transaction mined", extra=extra)
        else:
            log.warning("transaction failed", extra=extra)

    async def _fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): twice the base fee plus the node's tip."""
        priority = await self.rpc.max_priority_fee()
        base = await self.rpc.base_fee()
        return 2 * base + priority, priority

    def _sign_tx(
        self, entry: OutboxEntry, *, nonce: int, gas: int, max_fee: int, priority: int
    ) -> tuple[str, bytes]:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": AsyncWeb3.to_checksum_address(entry.to),
            "value": entry.value,
            "data": entry.data,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority,
        }
        signed = self._account.sign_transaction(tx)
        return hex0x(signed.hash), bytes(signed.raw_transaction)

    async def _sign(
        self, entry: OutboxEntry, report: PassReport
    ) -> tuple[OutboxEntry, Attempt] | None:
        """Nonce, gas and fees for a built row, signed and committed (not yet sent)."""
        async with unit_of_work(self.sessions) as session:
            repository = OutboxRepository(session)
            stored_nonce = await repository.lock_next_nonce(self.chain_id, self.address)
            current = await repository.get(entry.id, lock=True)
            if current is None or current.status != "built":
                return None
            try:
                estimate = await self.rpc.estimate_gas(
                    self.address, current.to, current.data, current.value
                )
            except ContractLogicError as exc:
                reason = describe_revert(exc, self.reverts)
                await repository.mark_final(current.id, status="failed", error=f"reverts: {reason}")
                report.failed.append(current.key)
                log.warning(
                    "transaction not sent: it would revert",
                    extra={"key": current.key, "reason": reason},
                )
                return None
            except TxRejected as exc:
                await repository.note_error(current.id, f"gas estimation refused: {exc.reason}")
                log.warning(
                    "gas estimation refused; retrying later",
                    extra={"key": current.key, "reason": exc.reason},
                )
                return None
            gas = estimate + estimate * self.settings.tx_gas_margin_percent // 100
            nonce = max(stored_nonce, await self.rpc.nonce(self.address, "pending"))
            max_fee, priority = await self._fees()
            cap = self.settings.tx_max_fee_gwei * GWEI
            max_fee = min(max_fee, cap)
            priority = min(priority, max_fee)
            tx_hash, raw = self._sign_tx(
                current, nonce=nonce, gas=gas, max_fee=max_fee, priority=priority
            )
            await repository.add_attempt(
                outbox_id=current.id,
                tx_hash=tx_hash,
                nonce=nonce,
                raw=raw,
                max_fee_per_gas=max_fee,
                max_priority_fee_per_gas=priority,
            )
            await repository.mark_signed(current.id, nonce=nonce, gas_limit=gas)
            await repository.set_next_nonce(self.chain_id, self.address, nonce + 1)
            signed_entry = await repository.get(current.id)
            attempt = (await repository.attempts(current.id))[-1]
        assert signed_entry is not None
        report.signed.append(entry.key)
        log.info(
            "transaction signed",
            extra={"key": entry.key, "nonce": nonce, "tx_hash": tx_hash, "gas": gas},
        )
        return signed_entry, attempt

    async def _broadcast(self, entry: OutboxEntry, attempt: Attempt, report: PassReport) -> None:
        """Sends the stored bytes of `attempt`; an answer that it is already known counts as
        sent. Every other refusal is recorded and left to the next pass to sort out."""
        with self.tracer.start_as_current_span("oracle send") as span:
            span.set_attribute("nodus.tx.key", entry.key)
            span.set_attribute("nodus.tx.nonce", attempt.nonce)
            span.set_attribute("nodus.tx.hash", attempt.tx_hash)
            span.set_attribute("nodus.tx.outcome", "error")  # unless one of those below
            try:
                await self.rpc.send_raw(attempt.raw)
            except TxRejected as exc:
                reason = exc.reason.lower()
                if not any(s in reason for s in _ALREADY_KNOWN):
                    span.set_attribute("nodus.tx.outcome", "refused")
                    span.set_attribute("nodus.tx.reason", exc.reason)
                    await self._refused(entry, attempt, exc.reason)
                    return
                span.set_attribute("nodus.tx.outcome", "already_known")
            else:
                span.set_attribute("nodus.tx.outcome", "sent")
            async with unit_of_work(self.sessions) as session:
                repository = OutboxRepository(session)
                await repository.mark_broadcast(attempt.id, self.now())
                await repository.mark_sent(entry.id)
        report.broadcast.append(entry.key)
        log.info(
            "transaction sent",
            extra={"key": entry.key, "nonce": entry.nonce, "tx_hash": attempt.tx_hash},
        )

    async def _refused(self, entry: OutboxEntry, attempt: Attempt, reason: str) -> None:
        lowered = reason.lower()
        if any(s in lowered for s in _NONCE_USED):
            # Mined already (ours), or taken by another transaction: the next pass tells which.
            log.info("nonce already used", extra={"key": entry.key, "tx_hash": attempt.tx_hash})
            return
        async with unit_of_work(self.sessions) as session:
            repository = OutboxRepository(session)
            if "underpriced" in lowered:
                await repository.mark_rejected(attempt.id, reason)
            await repository.note_error(entry.id, f"broadcast refused: {reason}")
        log.warning(
            "broadcast refused; retrying later",
            extra={"key": entry.key, "tx_hash": attempt.tx_hash, "reason": reason},
        )

    async def _replace(
        self, entry: OutboxEntry, attempts: list[Attempt], report: PassReport
    ) -> None:
        """A stuck transaction again with the same nonce and both fee caps raised by at least
        the bump over every earlier attempt (and to at least what the chain asks now)."""
        assert entry.nonce is not None
        assert entry.gas_limit is not None
        bps = self.settings.tx_fee_bump_bps
        suggested_fee, suggested_priority = await self._fees()
        top_priority = max(a.max_priority_fee_per_gas for a in attempts)
        top_fee = max(a.max_fee_per_gas for a in attempts)
        priority = max(bump(top_priority, bps), suggested_priority)
        max_fee = max(bump(top_fee, bps), suggested_fee, priority)
        cap = self.settings.tx_max_fee_gwei * GWEI
        if max_fee > cap:
            async with unit_of_work(self.sessions) as session:
                await OutboxRepository(session).note_error(
                    entry.id, f"stuck, and a replacement would exceed the fee cap ({cap} wei)"
                )
            log.warning(
                "stuck transaction not replaced: fee cap reached",
                extra={"key": entry.key, "nonce": entry.nonce, "max_fee_per_gas": max_fee},
            )
            return
        tx_hash, raw = self._sign_tx(
            entry, nonce=entry.nonce, gas=entry.gas_limit, max_fee=max_fee, priority=priority
        )
        async with unit_of_work(self.sessions) as session:
            repository = OutboxRepository(session)
            current = await repository.get(entry.id, lock=True)
            if current is None or current.final:
                return
            if len(await repository.attempts(entry.id)) != len(attempts):
                return  # replaced meanwhile
            await repository.add_attempt(
                outbox_id=entry.id,
                tx_hash=tx_hash,
                nonce=entry.nonce,
                raw=raw,
                max_fee_per_gas=max_fee,
                max_priority_fee_per_gas=priority,
            )
            attempt = (await repository.attempts(entry.id))[-1]
        report.replaced.append(entry.key)
        log.warning(
            "stuck transaction replaced",
            extra={
                "key": entry.key,
                "nonce": entry.nonce,
                "old_tx_hash": attempts[-1].tx_hash,
                "tx_hash": tx_hash,
                "max_fee_per_gas": max_fee,
                "max_priority_fee_per_gas": priority,
            },
        )
        await self._broadcast(entry, attempt, report)
