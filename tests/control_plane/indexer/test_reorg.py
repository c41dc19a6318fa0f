"""Reorgs on a real anvil (`anvil_reorg` replaces the newest blocks with new ones at the same
heights): a `Subscribed` event the new chain does not have is removed exactly once, a payment the
new chain has instead is added, and the subscriber's expiry follows the chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from web3.exceptions import TransactionNotFound

from control_plane.chain.clock import chain_now
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.db import unit_of_work
from control_plane.indexer.models import IndexedBlock
from control_plane.indexer.sync import SyncReport, index_chain
from control_plane.jobs import Services
from control_plane.subscriptions.expiry import (
    NEVER,
    bump_nodes_of,
    current_expiry,
    reconcile_direct_reads,
)
from control_plane.subscriptions.models import Payment
from tests.control_plane.indexer.onchain import (
    approve_subscriptions,
    at,
    contract_expiry,
    expire,
    fresh_wallet,
    head,
    node_with_config,
    reorg,
    revision,
    signed_subscribe,
    stored_expiry,
    subscribe,
    sync,
)


async def run_indexer(services: Services) -> SyncReport:
    async with unit_of_work(services.sessions) as session:
        return await index_chain(services, session)


async def payment_rows(services: Services) -> list[tuple[str, int, int]]:
    async with unit_of_work(services.sessions) as session:
        rows = await session.execute(
            select(Payment.tx_hash, Payment.block_number, Payment.months).order_by(
                Payment.block_number
            )
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_reorg_replacing_a_payment_removes_it_once_and_indexes_the_new_one(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await approve_subscriptions(w3, deployment, user)
    nonce = await w3.eth.get_transaction_count(user.address)
    dropped = await subscribe(w3, deployment, user, 3)
    await sync(services)
    dropped_hash = "0x" + bytes(dropped["transactionHash"]).hex()
    assert [r[0] for r in await payment_rows(services)] == [dropped_hash]
    three_months = await stored_expiry(services, user.address)

    # The block with the 3-month payment is replaced by one with a 1-month payment instead.
    replacement = await signed_subscribe(w3, deployment, user, 1, nonce)
    await reorg(w3, 1, [(replacement, 0)])
    with pytest.raises(TransactionNotFound):  # the 3-month payment is gone from the chain
        await w3.eth.get_transaction_receipt(dropped["transactionHash"])
    chain_expiry = await contract_expiry(w3, deployment, user.address)
    assert three_months is not None
    assert at(chain_expiry) < three_months

    report = await run_indexer(services)

    assert report.fork_point == dropped["blockNumber"] - 1
    assert (report.payments_removed, report.payments_added) == (1, 1)
    rows = await payment_rows(services)
    assert len(rows) == 1
    assert rows[0][0] != dropped_hash
    assert rows[0][1:] == (dropped["blockNumber"], 1)
    assert await stored_expiry(services, user.address) == at(chain_expiry)

    # Nothing more to remove or add: the reorg was handled exactly once.
    again = await run_indexer(services)
    assert (again.fork_point, again.payments_removed, again.payments_added) == (None, 0, 0)
    assert await payment_rows(services) == rows
    # The stored hashes are the new chain's.
    async with unit_of_work(services.sessions) as session:
        stored = await session.scalar(
            select(IndexedBlock.hash).where(IndexedBlock.number == dropped["blockNumber"])
        )
    block = await w3.eth.get_block(dropped["blockNumber"])
    assert stored == "0x" + bytes(block["hash"]).hex()


async def test_reorg_dropping_the_only_payment_lapses_the_subscriber_and_its_peers_leave(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await approve_subscriptions(w3, deployment, user)
    await subscribe(w3, deployment, user, 1)
    await w3.provider.make_request("evm_mine", [])
    await sync(services)
    node_id = "0x" + "ab" * 32
    await node_with_config(services, node_id, user.address)
    await expire(services)
    assert await revision(services, node_id) == 0  # paid: nothing to announce

    await reorg(w3, 2)  # the payment's block and the one after it are replaced by empty ones
    assert await contract_expiry(w3, deployment, user.address) == 0

    report = await run_indexer(services)

    assert report.payments_removed == 1
    assert await payment_rows(services) == []
    assert await stored_expiry(services, user.address) == NEVER
    await expire(services)
    assert await revision(services, node_id) == 1
    await expire(services)
    await sync(services)
    assert await revision(services, node_id) == 1  # exactly once


async def test_reorg_below_older_blocks_rewinds_to_the_fork_point(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    """A deeper reorg: two payments in successive blocks, both replaced; payments before the
    fork stay."""
    kept, first, second = [await fresh_wallet(w3, deployment) for _ in range(3)]
    for user in (kept, first, second):
        await approve_subscriptions(w3, deployment, user)
    await subscribe(w3, deployment, kept, 1)
    fork_block = await head(w3)
    await subscribe(w3, deployment, first, 1)
    await subscribe(w3, deployment, second, 1)
    await sync(services)
    assert len(await payment_rows(services)) == 3

    await reorg(w3, (await head(w3)) - fork_block)

    report = await run_indexer(services)
    assert report.fork_point == fork_block
    assert report.payments_removed == 2
    assert [r[1] for r in await payment_rows(services)] == [fork_block]
    assert await stored_expiry(services, kept.address) == at(
        await contract_expiry(w3, deployment, kept.address)
    )
    for user in (first, second):
        assert await stored_expiry(services, user.address) == NEVER


async def test_an_expiry_read_from_the_chain_that_a_reorg_took_back_is_corrected(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    # The config path reads expiresAt straight from the chain (no wait for the indexer) and
    # records it; if a reorg takes that payment back before the indexer ever saw it, the
    # recorded expiry must not outlive it: the indexer re-reads and corrects it.
    user = await fresh_wallet(w3, deployment)
    await approve_subscriptions(w3, deployment, user)
    await subscribe(w3, deployment, user, 1)
    node_id = "0x" + "cd" * 32
    await node_with_config(services, node_id, user.address)
    async with unit_of_work(services.sessions) as session:
        recorded = await current_expiry(
            session,
            services.chain,
            user.address,
            max_age=0,
            reads=services.chain_reads,
            now=await chain_now(services.chain),
        )
    assert recorded is not None
    assert await stored_expiry(services, user.address) == recorded

    await reorg(w3, 2)  # the payment is gone; the indexer never indexed it
    assert await contract_expiry(w3, deployment, user.address) == 0
    before = await revision(services, node_id)

    async with unit_of_work(services.sessions) as session:
        changed = await reconcile_direct_reads(
            session, services.chain, datetime.now(UTC) + timedelta(minutes=5)
        )
        await bump_nodes_of(session, changed)

    assert changed == [user.address.lower()]
    assert await stored_expiry(services, user.address) == NEVER
    assert await revision(services, node_id) == before + 1
