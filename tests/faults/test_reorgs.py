"""R1: randomized reorgs (anvil's `anvil_reorg`: the newest `depth` blocks replaced by new ones,
with chosen signed transactions replayed at chosen offsets) over payments and renewals, with the
indexer run before, during and after each reorg at random. After every trial, against the
canonical chain read independently: every `Subscribed` log is a payment row exactly once and no
other row exists, each subscriber's expiry is the contract's, and each subscriber whose expiry
changed had its node's peer-set revision bumped (what tells its agent).

Set NODUS_REORG_SEED to replay a failing run (the seed is in the failure message) and
NODUS_REORG_TRIALS to run more trials than the default."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.jobs import Services
from control_plane.settings import Settings
from control_plane.subscriptions.expiry import NEVER
from control_plane.subscriptions.models import Payment
from tests.control_plane.indexer.onchain import (
    NDS,
    approve_subscriptions,
    at,
    contract_expiry,
    fresh_wallet,
    head,
    mine,
    node_with_config,
    reorg,
    revision,
    signed_subscribe,
    stored_expiry,
    subscribe,
    sync,
)
from tests.support.devchain import Anvil
from tests.support.own_chain import own_chain

TRIALS = int(os.environ.get("NODUS_REORG_TRIALS", "200"))
"""The issue asks for 200 (168 s alone on 2 cores); NODUS_REORG_TRIALS changes it."""
SUBSCRIBERS = 4
MAX_DEPTH = 6

# Its own chain: on the session's shared anvil, which every earlier test reverted to its
# snapshot, a contract read after a reorg returned no data in a full run.
anvil, deployments_dir, deployment = own_chain("reorgs")


@dataclass(frozen=True, slots=True)
class Subscriber:
    wallet: LocalAccount
    node_id: str  # a node holding only this subscriber's config


@pytest.fixture
async def services(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[Services]:
    settings = settings.model_copy(update={"expiry_cache_seconds": 0.0})
    engine = make_engine(settings.database_url)
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    yield Services(settings, make_sessionmaker(engine), chain)
    await chain.aclose()
    await engine.dispose()


async def canonical_payments(w3: Web3Client, deployment: Deployment) -> list[tuple[str, int]]:
    """Every `Subscribed` log on the chain as it is now: (tx hash, log index)."""
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    logs = await subscriptions.events.Subscribed.get_logs(from_block=deployment.start_block)
    return sorted(("0x" + bytes(e["transactionHash"]).hex(), int(e["logIndex"])) for e in logs)


async def indexed_payments(services: Services) -> list[tuple[str, int]]:
    async with unit_of_work(services.sessions) as session:
        rows = await session.execute(select(Payment.tx_hash, Payment.log_index))
        return sorted((str(tx), int(index)) for tx, index in rows.all())


async def observed(
    services: Services, subscribers: list[Subscriber]
) -> dict[str, tuple[datetime | None, int]]:
    """Each subscriber's stored expiry and its node's revision."""
    return {
        s.wallet.address: (
            await stored_expiry(services, s.wallet.address),
            await revision(services, s.node_id),
        )
        for s in subscribers
    }


async def replayed_payments(
    w3: Web3Client,
    deployment: Deployment,
    rng: random.Random,
    subscribers: list[Subscriber],
    depth: int,
) -> list[tuple[str, int]]:
    """Payments for the new blocks: signed with the nonces the accounts had at the fork point,
    each at a random offset into the new blocks (a payer's in order of its nonces)."""
    fork = await head(w3) - depth
    chosen = sorted(
        ((rng.randrange(depth), rng.choice(subscribers)) for _ in range(rng.randint(0, 3))),
        key=lambda pair: pair[0],
    )
    nonces: dict[str, int] = {}
    replay = []
    for offset, subscriber in chosen:
        address = subscriber.wallet.address
        if address not in nonces:
            nonces[address] = await w3.eth.get_transaction_count(address, fork)
        months = rng.randint(1, 3)
        raw = await signed_subscribe(w3, deployment, subscriber.wallet, months, nonces[address])
        nonces[address] += 1
        replay.append((raw, offset))
    return replay


async def check_against_chain(
    services: Services,
    w3: Web3Client,
    deployment: Deployment,
    subscribers: list[Subscriber],
    before: dict[str, tuple[datetime | None, int]],
) -> dict[str, tuple[datetime | None, int]]:
    canonical = await canonical_payments(w3, deployment)
    indexed = await indexed_payments(services)
    assert indexed == canonical, "payments differ from the canonical chain's Subscribed logs"
    after = await observed(services, subscribers)
    for s in subscribers:
        on_chain = await contract_expiry(w3, deployment, s.wallet.address)
        expiry, rev = after[s.wallet.address]
        if on_chain == 0:
            assert expiry in (None, NEVER), (s.wallet.address, expiry)
        else:
            assert expiry == at(on_chain), (s.wallet.address, expiry, at(on_chain))
        old_expiry, old_rev = before[s.wallet.address]
        assert rev >= old_rev
        if (old_expiry or NEVER) != (expiry or NEVER):
            assert rev > old_rev, f"{s.wallet.address}: expiry changed, agents not told"
    return after


async def trial(
    services: Services,
    w3: Web3Client,
    deployment: Deployment,
    rng: random.Random,
    subscribers: list[Subscriber],
    floor: int,
) -> None:
    """Payments (some indexed before the reorg), one reorg (sometimes while the indexer runs),
    then the indexer until it is caught up; checked against the chain."""
    before = await observed(services, subscribers)
    for _ in range(rng.randint(0, 3)):
        action = rng.random()
        if action < 0.6:
            await subscribe(w3, deployment, rng.choice(subscribers).wallet, rng.randint(1, 3))
        elif action < 0.8:
            await mine(w3, rng.randint(1, 2))
        else:
            await sync(services)
    if rng.random() < 0.7:
        await sync(services)
    if await head(w3) == floor:
        await mine(w3)
    depth = rng.randint(1, min(MAX_DEPTH, await head(w3) - floor))
    replay = await replayed_payments(w3, deployment, rng, subscribers, depth)
    if rng.random() < 0.3:
        # The chain moves under a running indexer: it stops (ChainMoved) or finishes first.
        await asyncio.gather(sync(services), reorg(w3, depth, replay))
    else:
        await reorg(w3, depth, replay)
    for _ in range(rng.randint(1, 2)):
        await sync(services)
    await check_against_chain(services, w3, deployment, subscribers, before)


async def test_randomized_reorgs_keep_payments_expiries_and_peer_sets_canonical(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    seed = int(os.environ.get("NODUS_REORG_SEED") or secrets.randbits(32))
    rng = random.Random(seed)
    subscribers = []
    for index in range(SUBSCRIBERS):
        wallet = await fresh_wallet(w3, deployment, 20_000 * NDS)  # 200 trials of renewals
        await approve_subscriptions(w3, deployment, wallet)
        node_id = "0x" + f"{index + 1:02x}" * 32
        await node_with_config(services, node_id, wallet.address)
        subscribers.append(Subscriber(wallet, node_id))
    await subscribe(w3, deployment, subscribers[0].wallet, 1)  # a payment below every reorg
    floor = await head(w3)  # reorgs never reach the funding and approvals above
    await sync(services)
    await check_against_chain(
        services, w3, deployment, subscribers, await observed(services, subscribers)
    )
    for number in range(TRIALS):
        try:
            await trial(services, w3, deployment, rng, subscribers, floor)
        except AssertionError as exc:
            raise AssertionError(
                f"NODUS_REORG_SEED={seed}: trial {number} of {TRIALS}: {exc}"
            ) from exc
    print(f"{TRIALS} reorg trials passed (NODUS_REORG_SEED={seed})")
