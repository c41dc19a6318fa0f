"""Reward epochs proposed and accepted on a real anvil through the oracle's sender: exactly once,
even when proposed twice, concurrently, or by a sender killed mid-send; refused with a reason
when the chain would refuse; a revoked root recorded and the next epoch proceeding."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from pydantic import SecretStr

from control_plane.chain.client import hex0x
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.oracle_key import OracleKeyError
from control_plane.chain.sender import TransactionSender
from control_plane.db import unit_of_work
from control_plane.jobs import Services
from control_plane.rewards.formula.merkle import RewardTree
from control_plane.rewards.posting.publisher import (
    PostingRefused,
    accept_due_roots,
    accept_due_roots_job,
    accepted_cumulative,
    due_epoch,
    flush_revenue,
    post_epoch,
    posting_jobs,
    propose_epoch,
    refresh_publications,
    send_oracle_transactions,
)
from control_plane.rewards.posting.repository import PostingRepository
from control_plane.settings import RewardPostingSettings, Settings
from tests.control_plane.chain.support import (
    NDS,
    CrashingRpc,
    Killed,
    SenderFactory,
    events,
    oracle_nonce,
)
from tests.control_plane.rewards_posting.support import accept, post_and_accept, published
from tests.support.devchain import dev_account, transact

OP_A: str = dev_account(2).address
OP_B: str = dev_account(3).address
OTHER = "0x" + "42" * 20


async def publication_status(services: Services, epoch: int) -> str | None:
    async with unit_of_work(services.sessions) as session:
        found = await PostingRepository(session).publication(services.chain.chain_id, epoch)
    return None if found is None else found.status


async def test_an_epoch_is_proposed_and_accepted_through_the_sender(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    cumulative = {OP_A: 123 * NDS + 7, OP_B: 50 * NDS, OTHER: 1}
    data = published(1, cumulative)
    tree = RewardTree.build(cumulative.items())

    async with unit_of_work(services.sessions) as session:
        posting = await propose_epoch(services, session, 1, cumulative, data, sender=sender)
    assert posting.queued
    assert posting.status == "queued"
    assert posting.root == hex0x(tree.root)
    assert posting.data_hash == hex0x(keccak(data))
    assert (await sender.wait(posting.propose_key)).status == "mined"

    (proposed,) = await events(w3, deployment, "RootProposed")
    assert proposed["args"]["epoch"] == 1
    assert proposed["args"]["root"] == tree.root
    assert proposed["args"]["totalCumulative"] == 173 * NDS + 8
    assert proposed["args"]["dataHash"] == keccak(data)
    pending = await distributor.functions.pendingRoot().call()
    assert pending[0] == tree.root

    # Within the challenge window nothing is accepted.
    async with unit_of_work(services.sessions) as session:
        early = await accept_due_roots(services, session, sender=sender)
    assert early.proposed == [1]
    assert early.accept_queued is None
    assert await publication_status(services, 1) == "proposed"

    report = await accept(services, sender, w3, deployment)

    assert report.accept_queued == 1
    assert await distributor.functions.currentEpoch().call() == 1
    assert await distributor.functions.currentRoot().call() == tree.root
    assert await distributor.functions.currentDataHash().call() == keccak(data)
    assert len(await events(w3, deployment, "RootAccepted")) == 1
    assert await publication_status(services, 1) == "accepted"


async def test_an_epoch_proposed_twice_or_concurrently_is_one_transaction(
    services: Services, make_sender: SenderFactory, w3: Web3Client, deployment: Deployment
) -> None:
    cumulative = {OP_A: 10 * NDS, OP_B: 20 * NDS}
    data = published(1, cumulative)
    before = await oracle_nonce(w3)
    replicas = [make_sender() for _ in range(3)]

    async def propose(sender: TransactionSender) -> bool:
        async with unit_of_work(services.sessions) as session:
            posting = await propose_epoch(services, session, 1, cumulative, data, sender=sender)
        return posting.queued

    queued = await asyncio.gather(*(propose(s) for s in replicas))
    await asyncio.gather(*(s.process() for s in replicas))
    await replicas[0].wait("propose-epoch-1")
    again = await post_epoch(services, 1, cumulative, data, sender=replicas[1])

    assert sorted(queued) == [False, False, True]
    assert not again.queued
    assert again.status == "proposed"
    assert len(await events(w3, deployment, "RootProposed")) == 1
    assert await oracle_nonce(w3) == before + 1
    with pytest.raises(PostingRefused) as refused:
        await post_epoch(
            services, 1, {OP_A: 11 * NDS}, published(1, {OP_A: 11}), sender=replicas[2]
        )
    assert refused.value.code == "epoch_conflict"


@pytest.mark.parametrize("after_send", [False, True], ids=["before-broadcast", "after-broadcast"])
async def test_a_sender_killed_after_signing_posts_the_epoch_exactly_once(
    services: Services,
    make_sender: SenderFactory,
    w3: Web3Client,
    deployment: Deployment,
    after_send: bool,
) -> None:
    cumulative = {OP_A: 5 * NDS}
    data = published(1, cumulative)
    before = await oracle_nonce(w3)
    crashing = make_sender(rpc=lambda inner: CrashingRpc(inner, after_send=after_send))

    with pytest.raises(Killed):
        await post_epoch(services, 1, cumulative, data, sender=crashing)
    assert len(await events(w3, deployment, "RootProposed")) == (1 if after_send else 0)

    # The restarted process: the epoch job runs again, then the sender reconciles.
    restarted = make_sender()
    reposted = await post_epoch(services, 1, cumulative, data, sender=restarted)

    assert not reposted.queued
    assert reposted.status == "proposed"
    (proposed,) = await events(w3, deployment, "RootProposed")
    assert proposed["args"]["dataHash"] == keccak(data)
    assert await oracle_nonce(w3) == before + 1
    assert len(await restarted.attempts("propose-epoch-1")) == 1


async def test_what_the_chain_would_refuse_is_refused_before_anything_is_stored(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    budget = await distributor.functions.epochBudget().call()

    async def refusal(epoch: int, cumulative: dict[str, int], data: bytes | None = None) -> str:
        with pytest.raises(PostingRefused) as refused:
            async with unit_of_work(services.sessions) as session:
                await propose_epoch(
                    services,
                    session,
                    epoch,
                    cumulative,
                    published(epoch, cumulative) if data is None else data,
                    sender=sender,
                )
        return refused.value.code

    assert await refusal(2, {OP_A: NDS}) == "wrong_epoch"
    assert await refusal(1, {OP_A: budget + 1}) == "over_budget"
    assert await refusal(1, {OP_A: NDS}, b"not json") == "invalid"
    assert await refusal(1, {"0x1234": NDS}) == "invalid"
    assert await refusal(1, {}) == "invalid"
    assert await publication_status(services, 1) is None

    await post_epoch(services, 1, {OP_A: NDS}, published(1, {OP_A: NDS}), sender=sender)
    assert await refusal(2, {OP_A: 2 * NDS}) == "pending_root"
    await accept(services, sender, w3, deployment)
    # A smaller cumulative amount for one operator would block its claims.
    assert await refusal(2, {OP_A: NDS - 1}) == "cumulative_decreased"
    assert await refusal(2, {OP_A: NDS - 1, OP_B: 5 * NDS}) == "leaf_decreased"
    assert await refusal(2, {OP_B: 5 * NDS}) == "leaf_decreased"
    assert len(await events(w3, deployment, "RootProposed")) == 1


async def test_a_key_without_the_oracle_role_is_refused(
    services: Services, make_sender: SenderFactory, deployment: Deployment
) -> None:
    outsider = make_sender(oracle_private_key=SecretStr(dev_account(5).key.hex()))

    with pytest.raises(PostingRefused) as refused:
        await post_epoch(services, 1, {OP_A: NDS}, published(1, {OP_A: NDS}), sender=outsider)
    assert refused.value.code == "not_oracle"


async def test_a_revoked_root_is_recorded_and_the_next_epoch_proceeds(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    first = {OP_A: 1_000 * NDS}
    posting = await post_epoch(services, 1, first, published(1, first), sender=sender)

    # The guardian (the timelock) revokes it, as an executed governance proposal would.
    timelock = deployment.addresses["TimelockController"]
    await w3.provider.make_request("anvil_impersonateAccount", [timelock])
    await w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])
    try:
        tx = await w3.eth.send_transaction(
            {
                "from": timelock,
                "to": distributor.address,
                "data": distributor.encode_abi(
                    "revokeEpoch", args=[1, bytes.fromhex(posting.root[2:])]
                ),
            }
        )
        assert (await w3.eth.wait_for_transaction_receipt(tx))["status"] == 1
    finally:
        await w3.provider.make_request("anvil_stopImpersonatingAccount", [timelock])

    async with unit_of_work(services.sessions) as session:
        report = await accept_due_roots(services, session, sender=sender)
    assert report.revoked == [1]
    assert report.accept_queued is None
    assert await publication_status(services, 1) == "revoked"

    # Epoch 1 pays nothing; epoch 2 builds on no accepted tree at all.
    second = {OP_A: 10 * NDS, OP_B: 20 * NDS}
    await post_and_accept(services, sender, w3, deployment, 2, second)

    assert await distributor.functions.currentEpoch().call() == 2
    assert await distributor.functions.rootEpoch().call() == 2
    assert await distributor.functions.totalCumulative().call() == 30 * NDS
    assert await publication_status(services, 2) == "accepted"
    assert await publication_status(services, 1) == "revoked"
    assert len(await events(w3, deployment, "RootRevoked")) == 1


async def test_a_failed_proposal_is_queued_again_with_the_same_epoch(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    cumulative = {OP_A: NDS}
    async with unit_of_work(services.sessions) as session:
        await propose_epoch(
            services, session, 1, cumulative, published(1, cumulative), sender=sender
        )
    # Before the sender runs, the chain moves on: another oracle transaction takes epoch 1.
    other = RewardTree.build([(OP_B, NDS)])
    await transact(
        w3,
        dev_account(1),
        distributor.functions.proposeRoot(1, other.root, NDS, b"\x01" * 32),
    )
    assert (await sender.wait("propose-epoch-1")).status == "failed"
    async with unit_of_work(services.sessions) as session:
        report = await refresh_publications(services, session)
    assert report.failed == [1]
    assert await publication_status(services, 1) == "failed"
    async with unit_of_work(services.sessions) as session:
        # What never went on-chain is not served as published data.
        assert await PostingRepository(session).data(services.chain.chain_id, 1) is None


async def test_flush_revenue_funds_the_pool_once_per_epoch(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    token = contract(w3, deployment, "NDSToken")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    distributor = contract(w3, deployment, "RewardDistributor")
    subscriber = dev_account(6)
    price = await subscriptions.functions.pricePerPeriod().call()
    await transact(w3, subscriber, token.functions.approve(subscriptions.address, 3 * price))
    await transact(w3, subscriber, subscriptions.functions.subscribe(subscriber.address, 3, price))
    accrued = await subscriptions.functions.accruedRewards().call()
    assert accrued > 0
    funded = await distributor.functions.totalFunded().call()

    assert await flush_revenue(services, 1, sender=sender) == accrued

    assert await distributor.functions.totalFunded().call() == funded + accrued
    assert await subscriptions.functions.accruedRewards().call() == 0
    assert await flush_revenue(services, 1, sender=sender) == 0  # nothing accrued


async def test_the_due_epoch_and_the_accepted_leaves_the_next_epoch_builds_on(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    settings = RewardPostingSettings(epoch_seconds=3600)
    async with unit_of_work(services.sessions) as session:
        assert await due_epoch(services, session, settings) == 1
        assert await accepted_cumulative(services, session) == {}

    cumulative = {OP_A.lower(): 7 * NDS}
    await post_epoch(services, 1, cumulative, published(1, cumulative), sender=sender)
    async with unit_of_work(services.sessions) as session:
        assert await due_epoch(services, session, settings) is None  # pending
    await accept(services, sender, w3, deployment)

    later = datetime.now(UTC) + timedelta(seconds=3600)
    async with unit_of_work(services.sessions) as session:
        assert await due_epoch(services, session, settings) is None  # too soon
        assert await due_epoch(services, session, settings, now=later) == 2
        assert await accepted_cumulative(services, session) == {OP_A: 7 * NDS}


def from_environment() -> Settings:
    """What the server builds at start-up: the environment (the required secrets given here)."""
    return Settings(jwt_secret="j" * 32, api_key_secret="a" * 32, data_key="d" * 32)  # type: ignore[arg-type]


def test_the_posting_jobs_run_only_where_the_oracle_key_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("NODUS_ORACLE_PRIVATE_KEY", "NODUS_ORACLE_KEYSTORE_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert posting_jobs(from_environment()) == {}

    monkeypatch.setenv("NODUS_ORACLE_PRIVATE_KEY", dev_account(1).key.hex())
    monkeypatch.setenv("NODUS_TX_SEND_INTERVAL_SECONDS", "3")
    jobs = posting_jobs(from_environment())
    assert jobs["oracle_sender"] == (3.0, send_oracle_transactions)
    assert jobs["reward_accept"][1] is accept_due_roots_job

    monkeypatch.setenv("NODUS_ORACLE_PRIVATE_KEY", "0x1234")
    with pytest.raises(OracleKeyError):
        posting_jobs(from_environment())
