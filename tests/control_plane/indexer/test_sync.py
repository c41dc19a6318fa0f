"""The chain indexer against a real anvil with the real contracts: payments land with exact
amounts and the contract's expiry, a second run writes nothing, eth_getLogs ranges halve on
errors and recover, and an RPC failure ends a run cleanly, keeping its progress."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text
from web3.types import FilterParams, LogReceipt

from control_plane.app import create_app, scheduled_jobs
from control_plane.chain.client import LogQueryRejected, Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import unit_of_work
from control_plane.errors import ChainUnavailable
from control_plane.indexer.models import ChainCursor, IndexedBlock
from control_plane.indexer.sync import REORG_WINDOW, sync_chain
from control_plane.jobs import Services, run_exclusive
from control_plane.settings import Settings
from control_plane.subscriptions.expiry import expire_lapsed
from control_plane.subscriptions.models import Payment
from tests.control_plane.indexer.onchain import (
    NDS,
    approve_subscriptions,
    as_governance,
    at,
    contract_expiry,
    fresh_wallet,
    head,
    mine,
    pay,
    stored_expiry,
    subscribe,
    sync,
)
from tests.support.devchain import Anvil

TABLES = (
    "payments",
    "subscribers",
    "chain_nodes",
    "reward_epochs",
    "indexed_blocks",
    "chain_cursors",
)


async def dump(services: Services) -> dict[str, list[Any]]:
    """Every row the indexer writes, every column (timestamps included)."""
    async with unit_of_work(services.sessions) as session:
        return {
            table: [
                tuple(r)
                for r in (await session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))).all()
            ]
            for table in TABLES
        }


async def payments(services: Services) -> list[Payment]:
    async with unit_of_work(services.sessions) as session:
        rows = await session.scalars(
            select(Payment).order_by(Payment.block_number, Payment.log_index)
        )
        return list(rows)


async def cursor(services: Services) -> int | None:
    async with unit_of_work(services.sessions) as session:
        return await session.scalar(select(ChainCursor.next_block))


async def test_payment_is_indexed_with_exact_amount_and_contract_expiry(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    # An odd price (set by governance) makes the amount something a float cannot hold.
    price = 10 * NDS + 7
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    await as_governance(w3, deployment, subscriptions.functions.setPrice(price))
    user = await fresh_wallet(w3, deployment)
    receipt = await pay(w3, deployment, user, 3)

    await sync(services)

    (payment,) = await payments(services)
    assert payment.amount == 3 * price == 30_000_000_000_000_000_021
    assert isinstance(payment.amount, int) or str(payment.amount) == "30000000000000000021"
    assert payment.months == 3
    assert payment.subscriber == payment.payer == user.address.lower()
    assert payment.tx_hash == "0x" + bytes(receipt["transactionHash"]).hex()
    assert payment.block_number == receipt["blockNumber"]
    assert payment.block_hash == "0x" + bytes(receipt["blockHash"]).hex()
    expiry = await contract_expiry(w3, deployment, user.address)
    assert payment.expires_at == at(expiry)
    assert await stored_expiry(services, user.address) == at(expiry)
    # The cursor is past the head, and the head's hash is stored for reorg detection.
    chain_head = await head(w3)
    assert await cursor(services) == chain_head + 1
    async with unit_of_work(services.sessions) as session:
        stored = dict((await session.execute(select(IndexedBlock.number, IndexedBlock.hash))).all())
    block = await w3.eth.get_block(chain_head)
    assert stored[chain_head] == "0x" + bytes(block["hash"]).hex()
    assert len(stored) == min(REORG_WINDOW, chain_head - deployment.start_block + 1)


async def test_payment_for_someone_else_is_the_beneficiarys(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    payer = await fresh_wallet(w3, deployment)
    beneficiary = await fresh_wallet(w3, deployment, nds=0)
    await approve_subscriptions(w3, deployment, payer)
    await subscribe(w3, deployment, payer, 2, beneficiary=beneficiary.address)

    await sync(services)

    (payment,) = await payments(services)
    assert payment.subscriber == beneficiary.address.lower()
    assert payment.payer == payer.address.lower()
    expiry = await contract_expiry(w3, deployment, beneficiary.address)
    assert await stored_expiry(services, beneficiary.address) == at(expiry)
    assert await stored_expiry(services, payer.address) is None


async def test_second_run_and_a_full_reread_write_nothing_new(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)
    await subscribe(w3, deployment, user, 2)
    await sync(services)
    first = await dump(services)
    assert len(first["payments"]) == 2

    await sync(services)
    assert await dump(services) == first

    # Even reading every block again (cursor back at the deployment) changes no row.
    async with unit_of_work(services.sessions) as session:
        await session.execute(
            text("UPDATE chain_cursors SET next_block = :b"), {"b": deployment.start_block}
        )
    await sync(services)
    assert await dump(services) == first


async def test_renewals_raise_expiry_to_the_latest_payment(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)
    await sync(services)
    first = await stored_expiry(services, user.address)
    await subscribe(w3, deployment, user, 1)
    await subscribe(w3, deployment, user, 4)

    await sync(services)

    expiry = at(await contract_expiry(w3, deployment, user.address))
    assert first is not None
    assert expiry > first
    assert await stored_expiry(services, user.address) == expiry
    assert [p.months for p in await payments(services)] == [1, 1, 4]


class RangeLimitedReader(Web3ChainReader):
    """The real reader, except that eth_getLogs over more than `max_blocks` blocks is refused
    the way a provider refuses a too-large range (the only fake: at the RPC seam)."""

    def __init__(self, *args: Any, max_blocks: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_blocks = max_blocks
        self.ranges: list[tuple[int, int]] = []

    async def get_logs(self, params: FilterParams) -> list[LogReceipt]:
        start, end = int(params["fromBlock"]), int(params["toBlock"])
        self.ranges.append((start, end))
        if end - start + 1 > self.max_blocks:
            raise LogQueryRejected("query exceeds max block range")
        return await super().get_logs(params)


async def test_get_logs_range_halves_on_errors_and_is_restored_after_success(
    settings: Settings, services: Services, anvil: Anvil, w3: Web3Client, deployment: Deployment
) -> None:
    users = [await fresh_wallet(w3, deployment) for _ in range(3)]
    for months, user in enumerate(users, start=1):
        await pay(w3, deployment, user, months)
    chain_head = await head(w3)
    limited = RangeLimitedReader(
        Web3ChainReader.connect(anvil.rpc_url, deployment, 10).w3, deployment, max_blocks=3
    )
    chunked = Services(
        settings.model_copy(update={"indexer_chunk_blocks": 16}), services.sessions, limited
    )

    await sync(chunked)

    assert {p.subscriber for p in await payments(services)} == {u.address.lower() for u in users}
    assert await cursor(services) == chain_head + 1
    sizes = [end - start + 1 for start, end in limited.ranges]
    assert sizes[:4] == [16, 8, 4, 2]  # halved down to what the node accepts
    # After each success the next range starts again at the full size.
    successes = [i for i, n in enumerate(sizes) if n <= 3]
    assert all(sizes[i + 1] == min(16, chain_head - limited.ranges[i][1]) for i in successes[:-1])
    # Every block was read exactly once, in order, by the accepted ranges.
    accepted = [(s, e) for s, e in limited.ranges if e - s + 1 <= 3]
    assert accepted[0][0] == deployment.start_block
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(accepted))
    assert accepted[-1][1] == chain_head


class FailingFromReader(Web3ChainReader):
    """The real reader, except that the RPC endpoint 'goes down' for eth_getLogs from block
    `down_from` on (the only fake: at the RPC seam)."""

    def __init__(self, *args: Any, down_from: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down_from = down_from

    async def get_logs(self, params: FilterParams) -> list[LogReceipt]:
        if int(params["toBlock"]) >= self.down_from:
            raise ChainUnavailable()
        return await super().get_logs(params)


async def test_rpc_failure_ends_the_run_cleanly_keeping_progress_and_the_next_run_resumes(
    settings: Settings,
    services: Services,
    anvil: Anvil,
    w3: Web3Client,
    deployment: Deployment,
    caplog: pytest.LogCaptureFixture,
) -> None:
    early = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, early, 1)
    down_from = await head(w3) + 1
    late = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, late, 1)
    failing = FailingFromReader(
        Web3ChainReader.connect(anvil.rpc_url, deployment, 10).w3, deployment, down_from=down_from
    )
    flaky = Services(
        settings.model_copy(update={"indexer_chunk_blocks": 4}), services.sessions, failing
    )

    with caplog.at_level(logging.WARNING, logger="nodus.indexer"):
        assert await run_exclusive(flaky, "chain_sync", sync_chain)  # no exception escapes

    assert "chain sync stopped" in caplog.text
    assert [p.subscriber for p in await payments(services)] == [early.address.lower()]
    assert await cursor(services) == down_from
    await sync(services)  # the chain is back: the next run picks up where that one stopped
    assert [p.subscriber for p in await payments(services)] == [
        early.address.lower(),
        late.address.lower(),
    ]
    assert await cursor(services) == await head(w3) + 1


async def test_unreachable_chain_ends_the_run_cleanly(
    settings: Settings, services: Services, deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Web3ChainReader.connect("http://127.0.0.1:9", deployment, timeout=1)
    dead.base_delay = 0.0
    offline = Services(settings, services.sessions, dead)

    with caplog.at_level(logging.WARNING, logger="nodus.indexer"):
        assert await run_exclusive(offline, "chain_sync", sync_chain)

    assert "chain sync stopped" in caplog.text
    assert await payments(services) == []


async def test_concurrent_runs_of_a_job_run_it_once(services: Services) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def slow_expiry(job_services: Services, session: Any) -> None:
        runs.append("ran")
        started.set()
        await release.wait()
        await expire_lapsed(job_services, session)

    first = asyncio.create_task(run_exclusive(services, "expiry", slow_expiry))
    await started.wait()
    second = await run_exclusive(services, "expiry", slow_expiry)  # while the first holds it
    release.set()
    assert (await first, second) == (True, False)
    assert runs == ["ran"]
    # Another job's lock is independent.
    assert await run_exclusive(services, "chain_sync", sync_chain)


def test_both_jobs_are_scheduled_at_their_intervals(settings: Settings) -> None:
    jobs = scheduled_jobs(settings)
    assert jobs["chain_sync"] == (settings.chain_sync_interval_seconds, sync_chain)
    assert jobs["expiry"] == (settings.expiry_interval_seconds, expire_lapsed)


async def test_a_block_mined_after_sync_is_picked_up_next_run(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    await sync(services)
    assert await payments(services) == []
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)
    await mine(w3, 2)
    await sync(services)
    assert len(await payments(services)) == 1
    assert await cursor(services) == await head(w3) + 1


async def test_a_refused_log_query_is_not_an_outage(anvil: Anvil, deployment: Deployment) -> None:
    """The real reader: a JSON-RPC error answer to eth_getLogs is LogQueryRejected (ask for
    less), not retried and not counted against the circuit breaker."""
    reader = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    with pytest.raises(LogQueryRejected):
        await reader.get_logs({"fromBlock": 0, "toBlock": 1, "topics": [["0x1234"]]})
    assert reader.breaker.failures == 0
    assert await reader.ping()


async def test_the_service_runs_the_jobs_on_their_own(
    settings: Settings, services: Services, anvil: Anvil, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)
    live = settings.model_copy(
        update={
            "run_jobs": True,
            "chain_sync_interval_seconds": 0.2,
            "expiry_interval_seconds": 0.2,
        }
    )
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    async with LifespanManager(create_app(live, chain=chain)):
        for _ in range(100):
            if await payments(services):
                break
            await asyncio.sleep(0.1)
    assert [p.subscriber for p in await payments(services)] == [user.address.lower()]
