"""The oracle's transaction sender on a real anvil and PostgreSQL: one transaction per logical
action, nonces from the database, the stored bytes re-sent after a crash, stuck transactions
replaced with a fee bump, dropped ones re-sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import SecretStr
from sqlalchemy import select

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.oracle_key import OracleKeyError, load_oracle_account
from control_plane.chain.outbox import TxSenderKey
from control_plane.chain.sender import TransactionSender, bump
from control_plane.chain.tx_rpc import Web3TxRpc
from control_plane.db import unit_of_work
from control_plane.jobs import Services
from control_plane.settings import OracleSettings
from tests.control_plane.chain.support import (
    ORACLE,
    CrashingRpc,
    Killed,
    SenderFactory,
    manual_mining,
    mine,
    oracle_nonce,
    pool,
)


def flush_call(deployment: Deployment, w3: Web3Client) -> tuple[str, bytes]:
    """`SubscriptionManager.flushRevenue()`: anyone may call it, and it always succeeds."""
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    return subscriptions.address, bytes.fromhex(subscriptions.encode_abi("flushRevenue")[2:])


async def stored_nonce(services: Services) -> int | None:
    async with unit_of_work(services.sessions) as session:
        return await session.scalar(
            select(TxSenderKey.next_nonce).where(TxSenderKey.address == ORACLE.address.lower())
        )


async def test_a_queued_transaction_is_signed_sent_and_its_receipt_recorded(
    sender: TransactionSender, services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)

    queued = await sender.submit("flush-1", to, data)
    assert queued.status == "built"
    assert queued.nonce is None
    entry = await sender.wait("flush-1")

    assert entry.status == "mined"
    assert entry.nonce == before
    attempts = await sender.attempts("flush-1")
    assert [a.tx_hash for a in attempts] == [entry.mined_tx_hash]
    receipt = await w3.eth.get_transaction_receipt(attempts[0].tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    assert receipt["blockNumber"] == entry.mined_block
    assert receipt["gasUsed"] == entry.gas_used
    tx = await w3.eth.get_transaction(attempts[0].tx_hash)  # type: ignore[arg-type]
    assert tx["type"] == 2  # EIP-1559
    assert tx["gas"] >= receipt["gasUsed"]
    assert tx["maxFeePerGas"] >= tx["maxPriorityFeePerGas"]
    assert await oracle_nonce(w3) == before + 1
    assert await stored_nonce(services) == before + 1


async def test_one_key_is_one_transaction_even_when_submitted_concurrently(
    make_sender: SenderFactory, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    replicas = [make_sender() for _ in range(3)]

    entries = await asyncio.gather(*(s.submit("flush-once", to, data) for s in replicas))
    assert len({e.id for e in entries}) == 1
    await asyncio.gather(*(s.process() for s in replicas))
    final = await replicas[0].wait("flush-once")
    await replicas[1].submit("flush-once", to, data)  # later: still the same row
    await asyncio.gather(*(s.process() for s in replicas))

    assert final.status == "mined"
    assert len(await replicas[2].attempts("flush-once")) == 1
    assert await oracle_nonce(w3) == before + 1


async def test_nonces_stay_in_sequence_across_concurrent_senders(
    make_sender: SenderFactory, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    replicas = [make_sender() for _ in range(3)]
    keys = [f"flush-seq-{i}" for i in range(6)]
    for i, key in enumerate(keys):
        await replicas[i % 3].submit(key, to, data)

    await asyncio.gather(*(s.process() for s in replicas), *(s.process() for s in replicas))
    finals = [await replicas[0].wait(key) for key in keys]

    assert all(e.status == "mined" for e in finals)
    assert sorted(e.nonce for e in finals if e.nonce is not None) == list(range(before, before + 6))
    assert await oracle_nonce(w3) == before + 6


async def test_a_call_that_would_revert_fails_without_using_a_nonce(
    sender: TransactionSender, services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    data = bytes.fromhex(distributor.encode_abi("acceptRoot")[2:])  # nothing is pending
    before = await oracle_nonce(w3)

    await sender.submit("accept-nothing", distributor.address, data)
    entry = await sender.wait("accept-nothing")

    assert entry.status == "failed"
    assert entry.error == "reverts: NoPendingRoot()"
    assert entry.nonce is None
    assert await sender.attempts("accept-nothing") == []
    assert await oracle_nonce(w3) == before
    # The next transaction takes the nonce the failed one never used.
    to, flush = flush_call(deployment, w3)
    await sender.submit("flush-after", to, flush)
    assert (await sender.wait("flush-after")).nonce == before


@pytest.mark.parametrize("after_send", [False, True], ids=["before-broadcast", "after-broadcast"])
async def test_a_sender_killed_after_signing_resends_the_stored_bytes_on_restart(
    make_sender: SenderFactory, w3: Web3Client, deployment: Deployment, after_send: bool
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    crashing = make_sender(rpc=lambda inner: CrashingRpc(inner, after_send=after_send))
    await crashing.submit("flush-crash", to, data)

    with pytest.raises(Killed):
        await crashing.process()

    entry = await crashing.entry("flush-crash")
    assert entry is not None
    assert entry.status == "signed"  # durable before the broadcast
    (stored,) = await crashing.attempts("flush-crash")
    assert stored.nonce == before
    assert await oracle_nonce(w3) == (before + 1 if after_send else before)

    restarted = make_sender()
    await restarted.reconcile()
    final = await restarted.wait("flush-crash")

    assert final.status == "mined"
    assert final.mined_tx_hash == stored.tx_hash  # the very same signed transaction
    assert len(await restarted.attempts("flush-crash")) == 1
    assert await oracle_nonce(w3) == before + 1


async def test_a_sender_cancelled_while_waiting_for_the_receipt_is_finished_by_the_next(
    make_sender: SenderFactory, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    first = make_sender()
    async with manual_mining(w3):
        await first.submit("flush-cancel", to, data)
        waiting = asyncio.create_task(first.wait("flush-cancel"))
        for _ in range(200):
            entry = await first.entry("flush-cancel")
            if entry is not None and entry.status == "sent":
                break
            await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await mine(w3)

    final = await make_sender().wait("flush-cancel")

    assert final.status == "mined"
    assert len(await first.attempts("flush-cancel")) == 1
    assert await oracle_nonce(w3) == before + 1


async def test_a_stuck_transaction_is_replaced_with_a_fee_bump_and_mined_once(
    make_sender: SenderFactory, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    sender = make_sender(tx_stuck_seconds=1.0)
    async with manual_mining(w3):
        await sender.submit("flush-stuck", to, data)
        report = await sender.process()
        assert report.broadcast == ["flush-stuck"]
        (first,) = await sender.attempts("flush-stuck")
        assert [tx["hash"] for tx in (await pool(w3)).values()] == [first.tx_hash]

        assert (await sender.process()).replaced == []  # not stuck yet
        await asyncio.sleep(1.1)
        report = await sender.process()
        assert report.replaced == ["flush-stuck"]

        first, second = await sender.attempts("flush-stuck")
        assert second.nonce == first.nonce == before
        assert second.max_fee_per_gas * 1000 >= first.max_fee_per_gas * 1125
        assert second.max_priority_fee_per_gas * 1000 >= first.max_priority_fee_per_gas * 1125
        pending = await pool(w3)
        assert [tx["hash"] for tx in pending.values()] == [second.tx_hash]
        await mine(w3)

    final = await sender.wait("flush-stuck")
    assert final.status == "mined"
    assert final.mined_tx_hash == second.tx_hash
    assert await oracle_nonce(w3) == before + 1
    block = await w3.eth.get_block(final.mined_block or 0)
    assert len(block["transactions"]) == 1


async def test_a_dropped_transaction_is_sent_again_as_stored(
    sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    async with manual_mining(w3):
        await sender.submit("flush-dropped", to, data)
        await sender.process()
        (attempt,) = await sender.attempts("flush-dropped")
        await w3.provider.make_request("anvil_dropTransaction", [attempt.tx_hash])
        assert await pool(w3) == {}

        report = await sender.process()

        assert report.broadcast == ["flush-dropped"]
        assert [tx["hash"] for tx in (await pool(w3)).values()] == [attempt.tx_hash]
        await mine(w3)

    final = await sender.wait("flush-dropped")
    assert final.mined_tx_hash == attempt.tx_hash
    assert len(await sender.attempts("flush-dropped")) == 1
    assert await oracle_nonce(w3) == before + 1


async def test_a_dropped_transaction_whose_nonce_went_elsewhere_fails(
    sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    to, data = flush_call(deployment, w3)
    before = await oracle_nonce(w3)
    async with manual_mining(w3):
        await sender.submit("flush-usurped", to, data)
        await sender.process()
        (attempt,) = await sender.attempts("flush-usurped")
        await w3.provider.make_request("anvil_dropTransaction", [attempt.tx_hash])
        # Someone else signs with the oracle key and takes the nonce.
        other = ORACLE.sign_transaction(
            {
                "type": 2,
                "chainId": 31337,
                "nonce": before,
                "to": ORACLE.address,
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        await w3.eth.send_raw_transaction(other.raw_transaction)
        await mine(w3)

    final = await sender.wait("flush-usurped")

    assert final.status == "failed"
    assert final.error == f"nonce {before} was used by another transaction"
    assert await oracle_nonce(w3) == before + 1


def test_fee_bump_is_at_least_an_eighth_and_one_wei() -> None:
    assert bump(8, 1250) == 9
    assert bump(1_000_000_000, 1250) == 1_125_000_000
    assert bump(1_000_000_001, 1250) == 1_125_000_002  # rounded up
    assert bump(0, 1250) == 1
    assert bump(3, 1250) == 4


def test_the_key_loads_from_a_keystore_and_never_shows(tmp_path: Path) -> None:
    keystore = tmp_path / "oracle.json"
    keystore.write_text(json.dumps(Account.encrypt(ORACLE.key, "pw", iterations=2)))
    settings = OracleSettings(
        oracle_keystore_file=keystore,
        oracle_keystore_password=SecretStr("pw"),
    )

    assert load_oracle_account(settings).address == ORACLE.address
    assert ORACLE.key.hex() not in repr(settings)
    (tmp_path / "pw").write_text("wrong\n")
    wrong = settings.model_copy(
        update={
            "oracle_keystore_file": tmp_path / "other.json",
            "oracle_keystore_password": None,
            "oracle_keystore_password_file": tmp_path / "pw",
        }
    )
    (tmp_path / "other.json").write_text(keystore.read_text())
    with pytest.raises(OracleKeyError, match="cannot decrypt"):
        load_oracle_account(wrong)
    secret = "0x" + "ab" * 31  # too short
    with pytest.raises(OracleKeyError) as raised:
        load_oracle_account(OracleSettings(oracle_private_key=SecretStr(secret)))
    assert secret not in str(raised.value)
    assert "ab" * 31 not in repr(raised.value)
    with pytest.raises(OracleKeyError, match="no oracle key"):
        load_oracle_account(OracleSettings())


async def test_the_sender_repr_shows_no_key(sender: TransactionSender) -> None:
    assert ORACLE.key.hex().removeprefix("0x") not in repr(sender)
    assert isinstance(sender.rpc, Web3TxRpc)
