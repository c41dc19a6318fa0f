"""NodeRegistry and RewardDistributor events: chain_nodes mirrors each node as the contract
reports it when an event touches it (or the minimum stake changes), reward epochs follow
proposals and settlements, and a reorg takes back what the dropped blocks said."""

from __future__ import annotations

import os

from sqlalchemy import select

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import unit_of_work
from control_plane.indexer.models import ChainNode, RewardEpoch
from control_plane.jobs import Services
from tests.control_plane.indexer.onchain import NDS, as_governance, at, register_node, reorg, sync
from tests.support.devchain import advance_time, dev_account, transact


async def chain_node(services: Services, node_id: bytes) -> ChainNode | None:
    async with unit_of_work(services.sessions) as session:
        return await session.get(ChainNode, "0x" + node_id.hex())


async def epoch_row(services: Services, epoch: int) -> RewardEpoch | None:
    async with unit_of_work(services.sessions) as session:
        return await session.scalar(select(RewardEpoch).where(RewardEpoch.epoch == epoch))


async def test_node_events_mirror_the_registry(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    registry = contract(w3, deployment, "NodeRegistry")
    token = contract(w3, deployment, "NDSToken")
    operator = dev_account(4)
    node_id, registered = await register_node(w3, deployment, operator, 100 * NDS)
    other_id, _ = await register_node(w3, deployment, dev_account(5), 300 * NDS)

    await sync(services)

    row = await chain_node(services, node_id)
    assert row is not None
    agent = await registry.functions.getNode(node_id).call()
    assert (row.operator, row.agent) == (operator.address.lower(), agent[1].lower())
    assert (row.stake, row.status, row.active) == (100 * NDS, "active", True)
    assert row.updated_block == registered["blockNumber"]

    await transact(w3, operator, token.functions.approve(registry.address, 50 * NDS))
    await transact(w3, operator, registry.functions.increaseStake(node_id, 50 * NDS))
    await sync(services)
    row = await chain_node(services, node_id)
    assert row is not None
    assert row.stake == 150 * NDS

    # Governance raises the minimum stake: every node's `active` is re-read.
    await as_governance(w3, deployment, registry.functions.setMinStake(200 * NDS))
    await sync(services)
    row, other = await chain_node(services, node_id), await chain_node(services, other_id)
    assert row is not None
    assert other is not None
    assert (row.status, row.active) == ("active", False)
    assert other.active is True

    await transact(w3, operator, registry.functions.requestExit(node_id))
    await sync(services)
    row = await chain_node(services, node_id)
    assert row is not None
    assert (row.status, row.active) == ("exiting", False)


async def test_reorg_dropping_a_registration_deletes_the_node(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    node_id, _ = await register_node(w3, deployment, dev_account(4), 100 * NDS)
    await sync(services)
    assert await chain_node(services, node_id) is not None

    await reorg(w3, 1)
    await sync(services)

    assert await chain_node(services, node_id) is None


async def test_reward_epochs_follow_proposal_acceptance_and_reorg(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    root, data_hash = os.urandom(32), os.urandom(32)
    epoch = await rewards.functions.currentEpoch().call() + 1
    proposed = await transact(
        w3, dev_account(1), rewards.functions.proposeRoot(epoch, root, 5 * NDS + 3, data_hash)
    )
    await sync(services)

    row = await epoch_row(services, epoch)
    assert row is not None
    assert (row.status, row.root, row.data_hash) == (
        "proposed",
        "0x" + root.hex(),
        "0x" + data_hash.hex(),
    )
    assert row.total_cumulative == 5 * NDS + 3
    assert row.proposed_block == proposed["blockNumber"]
    pending = await rewards.functions.pendingRoot().call()
    assert row.valid_at == at(pending[-1])

    await advance_time(w3, await rewards.functions.challengePeriod().call())
    accepted = await transact(w3, dev_account(3), rewards.functions.acceptRoot())
    await sync(services)
    row = await epoch_row(services, epoch)
    assert row is not None
    assert (row.status, row.settled_block) == ("accepted", accepted["blockNumber"])

    await reorg(w3, 1)  # the acceptance's block is replaced by an empty one
    await sync(services)
    row = await epoch_row(services, epoch)
    assert row is not None
    assert (row.status, row.settled_block, row.settled_tx_hash) == ("proposed", None, None)


async def test_revoked_epoch(services: Services, w3: Web3Client, deployment: Deployment) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    epoch = await rewards.functions.currentEpoch().call() + 1
    await transact(
        w3,
        dev_account(1),
        rewards.functions.proposeRoot(epoch, os.urandom(32), NDS, os.urandom(32)),
    )
    await as_governance(w3, deployment, rewards.functions.revokeRoot())

    await sync(services)

    row = await epoch_row(services, epoch)
    assert row is not None
    assert row.status == "revoked"


async def test_epochs_revoked_by_the_guardian_key_or_withdrawn_by_the_oracle(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    oracle, guardian = dev_account(1), dev_account(2)  # the local deployment's keys
    first = await rewards.functions.currentEpoch().call() + 1
    root = os.urandom(32)
    await transact(w3, oracle, rewards.functions.proposeRoot(first, root, NDS, os.urandom(32)))
    await transact(w3, guardian, rewards.functions.revokeEpoch(first, root))
    root = os.urandom(32)
    await transact(w3, oracle, rewards.functions.proposeRoot(first + 1, root, NDS, os.urandom(32)))
    withdrawn = await transact(w3, oracle, rewards.functions.withdrawRoot(first + 1, root))

    await sync(services)

    revoked_row, withdrawn_row = (
        await epoch_row(services, first),
        await epoch_row(services, first + 1),
    )
    assert revoked_row is not None
    assert withdrawn_row is not None
    assert revoked_row.status == "revoked"
    assert (withdrawn_row.status, withdrawn_row.settled_block) == (
        "revoked",
        withdrawn["blockNumber"],
    )
