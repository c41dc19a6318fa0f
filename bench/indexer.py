"""P7: the indexer catching up on a long stretch of chain (blocks with Subscribed events spread
over it), next to naive per-block polling (one eth_getLogs per block) in the same run."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3.types import RPCEndpoint

from bench.report import Section
from bench.stack import running_stack
from control_plane.agent.feed import asyncpg_dsn
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import make_engine, make_sessionmaker
from control_plane.indexer.sync import sync_chain
from control_plane.jobs import Services, run_exclusive
from tests.support.devchain import dev_account, transact

NAIVE_SAMPLE_BLOCKS = 2_000  # naive polling is timed on this many blocks, then scaled
# A first payment for a new subscriber takes 94,955 (the README's gas table); room to spare.
SUBSCRIBE_GAS = 150_000
# The payers: anvil dev accounts from this one on (each holds 100,000 NDS, 10,000 months).
FIRST_PAYER = 3
PAYMENTS_PER_PAYER = 5_000


async def _seed(w3: Web3Client, stack_deployment: Deployment, blocks: int, events: int) -> None:
    """`events` payments for fresh addresses, `blocks` blocks in all.

    Each payment is signed here with its payer's next nonce and sent without waiting for its
    receipt (anvil mines it on arrival), then the gap is mined: waiting for each receipt made
    10,000 payments take minutes. A dev account holds 100,000 NDS, so several pay."""
    subscriptions = contract(w3, stack_deployment, "SubscriptionManager")
    token = contract(w3, stack_deployment, "NDSToken")
    price: int = await subscriptions.functions.pricePerPeriod().call()
    chain_id = await w3.eth.chain_id
    gas_price = await w3.eth.gas_price
    gap = max(0, blocks // events - 1)
    last = b""
    for first in range(0, events, PAYMENTS_PER_PAYER):
        payer = dev_account(FIRST_PAYER + first // PAYMENTS_PER_PAYER)
        count = min(PAYMENTS_PER_PAYER, events - first)
        await transact(w3, payer, token.functions.approve(subscriptions.address, count * price))
        nonce = await w3.eth.get_transaction_count(payer.address, "pending")
        for i in range(count):
            beneficiary = w3.to_checksum_address("0x" + secrets.token_hex(20))
            tx = {
                "to": subscriptions.address,
                "data": subscriptions.encode_abi("subscribe", args=[beneficiary, 1, price]),
                "nonce": nonce + i,
                "chainId": chain_id,
                "gas": SUBSCRIBE_GAS,
                "gasPrice": gas_price * 2,
                "value": 0,
            }
            raw = payer.sign_transaction(tx).raw_transaction
            last = await w3.eth.send_raw_transaction(raw)
            if gap:
                await w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(gap)])
    receipt = await w3.eth.wait_for_transaction_receipt(HexBytes(last), timeout=60)
    if receipt["status"] != 1:
        raise RuntimeError("the last seeded payment reverted")


async def _catch_up(services: Services, database_url: str, head: int) -> tuple[float, int]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        started = time.perf_counter()
        while True:
            await run_exclusive(services, "chain_sync", sync_chain)
            cursor = await connection.fetchval("SELECT max(next_block) FROM chain_cursors")
            if cursor is not None and cursor > head:
                elapsed = time.perf_counter() - started
                break
        payments = await connection.fetchval("SELECT count(*) FROM payments")
    finally:
        await connection.close()
    return elapsed, int(payments)


async def _naive(w3: Web3Client, addresses: list[ChecksumAddress], first: int, count: int) -> float:
    started = time.perf_counter()
    for number in range(first, first + count):
        await w3.eth.get_logs({"fromBlock": number, "toBlock": number, "address": addresses})
    return time.perf_counter() - started


def measure_p7(section: Section, quick: bool) -> None:
    blocks, events = (10_000, 1_000) if quick else (100_000, 10_000)
    with running_stack() as stack:

        async def run() -> tuple[float, int, float, int]:
            await _seed(stack.w3, stack.deployment, blocks, events)
            head = int(await stack.w3.eth.block_number)
            engine = make_engine(stack.settings.database_url)
            reader = Web3ChainReader.connect(stack.rpc_url, stack.deployment, timeout=30)
            services = Services(stack.settings, make_sessionmaker(engine), reader)
            try:
                indexed, payments = await _catch_up(services, stack.settings.database_url, head)
            finally:
                await reader.aclose()
                await engine.dispose()
            addresses = list(stack.deployment.addresses.values())
            sample = min(NAIVE_SAMPLE_BLOCKS, head)
            naive = await _naive(stack.w3, addresses, 1, sample) * (head / sample)
            return indexed, payments, naive, head

        indexed, payments, naive, head = asyncio.run(run())
    section.table(
        ("method", "blocks", "events indexed", "time", "vs naive"),
        [
            (
                "nodus indexer (eth_getLogs in chunks)",
                f"{head:,}",
                f"{payments:,}",
                f"{indexed:.2f} s",
                f"{naive / indexed:.0f}x faster",
            ),
            (
                f"naive: one eth_getLogs per block (timed on {min(NAIVE_SAMPLE_BLOCKS, head):,} "
                "blocks, scaled)",
                f"{head:,}",
                "",
                f"{naive:.1f} s",
                "1x",
            ),
        ],
    )
    section.add(
        f"A fresh anvil: {events:,} Subscribed events spread over {head:,} blocks, indexed "
        "from block 0 into an empty database by the indexer job (chunks of "
        f"NODUS_INDEXER_CHUNK_BLOCKS = {stack.settings.indexer_chunk_blocks:,}), until its "
        "cursor passed the head. Target: 100,000 blocks with 10,000 events in at most 10 s, "
        "at least 10x naive (the quick run: 10,000 blocks with 1,000 events). The seeding is not "
        "timed: each payment is signed with the next nonce and sent without waiting for its "
        "receipt, then the gap is mined.",
        "",
    )
