"""The expiry job: when a subscription lapses, every node holding a live config of that
subscriber gets exactly one revision bump; a renewal (seen by the indexer or by a direct read)
brings the peers back with one more bump, and the next lapse is announced again."""

from __future__ import annotations

from sqlalchemy import text

from control_plane.chain.clock import chain_now
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.db import unit_of_work
from control_plane.jobs import Services
from control_plane.subscriptions.expiry import current_expiry
from tests.control_plane.indexer.onchain import (
    PERIOD,
    approve_subscriptions,
    expire,
    fresh_wallet,
    node_with_config,
    revision,
    subscribe,
    sync,
)
from tests.support.devchain import advance_time

A, B, C, D = ("0x" + c * 64 for c in "abcd")


async def revisions(services: Services) -> dict[str, int]:
    return {node: await revision(services, node) for node in (A, B, C, D)}


async def test_a_lapse_bumps_each_node_once_and_a_renewal_bumps_again(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    user, other = await fresh_wallet(w3, deployment), await fresh_wallet(w3, deployment)
    for wallet in (user, other):
        await approve_subscriptions(w3, deployment, wallet)
    await subscribe(w3, deployment, user, 1)
    await subscribe(w3, deployment, other, 3)
    await sync(services)
    await node_with_config(services, A, user.address)
    await node_with_config(services, B, user.address)
    await node_with_config(services, B, user.address)  # two devices on B: still one bump
    await node_with_config(services, C, other.address)
    await node_with_config(services, D, user.address)
    async with unit_of_work(services.sessions) as session:  # D's config is revoked
        await session.execute(
            text("UPDATE device_configs SET revoked_at = now() WHERE node_id = :n"), {"n": D}
        )

    await expire(services)
    assert await revisions(services) == {A: 0, B: 0, C: 0, D: 0}

    await advance_time(w3, PERIOD + 60)  # user's month is over; other's three are not
    await expire(services)
    assert await revisions(services) == {A: 1, B: 1, C: 0, D: 0}
    await expire(services)
    await sync(services)
    assert await revisions(services) == {A: 1, B: 1, C: 0, D: 0}  # once

    await subscribe(w3, deployment, user, 1)  # renewal: the peers come back
    await sync(services)
    assert await revisions(services) == {A: 2, B: 2, C: 0, D: 0}
    await expire(services)
    await sync(services)
    assert await revisions(services) == {A: 2, B: 2, C: 0, D: 0}

    await advance_time(w3, PERIOD + 60)  # the renewed month lapses too: announced again
    await expire(services)
    await expire(services)
    assert await revisions(services) == {A: 3, B: 3, C: 0, D: 0}


async def test_a_renewal_seen_first_by_a_direct_read_bumps_once(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await approve_subscriptions(w3, deployment, user)
    await subscribe(w3, deployment, user, 1)
    await sync(services)
    await node_with_config(services, A, user.address)
    await advance_time(w3, PERIOD + 60)
    await expire(services)
    assert await revision(services, A) == 1

    await subscribe(w3, deployment, user, 2)
    # The configs service reads the expiry from the chain before the indexer sees the payment.
    async with unit_of_work(services.sessions) as session:
        await current_expiry(
            session,
            services.chain,
            user.address,
            max_age=0,
            reads=services.chain_reads,
            now=await chain_now(services.chain),
        )
    assert await revision(services, A) == 2
    await sync(services)
    await expire(services)
    assert await revision(services, A) == 2


async def test_a_renewal_before_the_lapse_is_announced_once_and_no_lapse_follows(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    # Agents remove a peer at the expiry they were given, by themselves: a renewal must reach
    # them (one bump), and the old expiry passing must not announce a lapse.
    user = await fresh_wallet(w3, deployment)
    await approve_subscriptions(w3, deployment, user)
    await subscribe(w3, deployment, user, 1)
    await sync(services)
    await node_with_config(services, A, user.address)
    await advance_time(w3, PERIOD - 3600)
    await subscribe(w3, deployment, user, 1)  # renewed before it lapsed
    await sync(services)
    assert await revision(services, A) == 1
    await advance_time(w3, 7200)
    await expire(services)
    assert await revision(services, A) == 1
