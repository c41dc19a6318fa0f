"""Whole governance rounds through `nodus dao` on the real contracts (local parameters: voting
delay 1 s, voting period 60 s, timelock 30 s, quorum 4% of the votable supply). Every vote is a
dev account's own: the ten dev accounts are the circulating holders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.rewards.formula.merkle import RewardTree
from tests.cli.conftest import (
    DEV_ACCOUNT_NDS,
    NDS,
    QUORUM,
    REPRESENTATIVE_VOTES,
    Cli,
    flat,
    proposal_id_of,
)
from tests.support.devchain import advance_time, dev_account, transact


async def status_of(cli: Cli, proposal_id: int) -> dict[str, Any]:
    result = await cli("dao", "status", str(proposal_id), "--json")
    assert result.exit_code == 0, result.output
    status: dict[str, Any] = json.loads(result.stdout)
    return status


async def test_a_full_governance_flow_changes_the_subscription_price(
    w3: Web3Client, deployment: Deployment, cli: Cli, representative: LocalAccount
) -> None:
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    token = contract(w3, deployment, "NDSToken")
    assert await subscriptions.functions.pricePerPeriod().call() == 10 * NDS

    proposed = await cli(
        "dao",
        "propose",
        "set-price",
        "12",
        "--description",
        "Price: 12 NDS a month",
        key=representative,
    )
    assert proposed.exit_code == 0, proposed.output
    proposal_id = proposal_id_of(proposed)
    assert (await status_of(cli, proposal_id))["state"] == "Pending"

    voted = await cli("dao", "vote", str(proposal_id), "for", "--advance-time", key=representative)
    assert voted.exit_code == 0, voted.output
    assert "with 900,000 NDS" in voted.stdout  # its own 100,000 NDS + eight delegations
    status = await status_of(cli, proposal_id)
    assert status["state"] == "Active"
    assert status["for"] == str(REPRESENTATIVE_VOTES)
    assert status["quorum"] == str(QUORUM)
    assert status["quorum_reached"] is True
    assert status["actions"] == ["SubscriptionManager.setPrice(12 NDS per 30 days)"]

    # Voting closes: the proposal has Succeeded but is not queued yet.
    await advance_time(w3, int(status["deadline"]) - int(status["now"]) + 1)
    assert (await status_of(cli, proposal_id))["state"] == "Succeeded"
    early = await cli("dao", "execute", str(proposal_id), key=representative)
    assert early.exit_code == 1
    assert "not queued yet" in flat(early)

    queued = await cli("dao", "queue", str(proposal_id), key=representative)
    assert queued.exit_code == 0, queued.output
    status = await status_of(cli, proposal_id)
    assert status["state"] == "Queued"
    assert int(status["eta"]) == int(status["now"]) + 30

    # The timelock holds it for 30 s: without --advance-time, execute refuses and says until when.
    held = await cli("dao", "execute", str(proposal_id), key=representative)
    assert held.exit_code == 1
    assert "the timelock holds proposal" in flat(held)
    executed = await cli("dao", "execute", str(proposal_id), "--advance-time", key=representative)
    assert executed.exit_code == 0, executed.output
    assert (await status_of(cli, proposal_id))["state"] == "Executed"
    assert await subscriptions.functions.pricePerPeriod().call() == 12 * NDS

    # The next subscription pays the new price (sent with web3, as a wallet would).
    subscriber = dev_account(6)
    with pytest.raises(ContractCustomError):  # a payer who accepts at most the old price
        await subscriptions.functions.subscribe(subscriber.address, 1, 10 * NDS).call(
            {"from": subscriber.address}
        )
    await transact(w3, subscriber, token.functions.approve(subscriptions.address, 12 * NDS))
    before = await token.functions.balanceOf(subscriber.address).call()
    receipt = await transact(
        w3, subscriber, subscriptions.functions.subscribe(subscriber.address, 1, 12 * NDS)
    )
    (event,) = subscriptions.events.Subscribed().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["paid"] == 12 * NDS
    assert await token.functions.balanceOf(subscriber.address).call() == before - 12 * NDS

    # The key is never echoed anywhere.
    for result in (proposed, voted, queued, held, executed):
        assert representative.key.hex().removeprefix("0x") not in result.output


async def test_the_ten_dev_accounts_govern_by_themselves(
    w3: Web3Client, deployment: Deployment, cli: Cli
) -> None:
    """No treasury grant and no impersonation: the ten dev accounts delegate to themselves, one
    proposes, all vote, and the price changes."""
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    holders = [dev_account(i) for i in range(10)]
    for holder in holders:
        delegated = await cli("dao", "delegate", key=holder)
        assert delegated.exit_code == 0, delegated.output
        assert f"voting power of {holder.address}: 100,000 NDS" in flat(delegated)

    proposed = await cli("dao", "propose", "set-price", "15", "-d", "Price: 15 NDS", key=holders[3])
    assert proposed.exit_code == 0, proposed.output
    proposal_id = proposal_id_of(proposed)
    for i, holder in enumerate(holders):
        args = ["dao", "vote", str(proposal_id), "for"] + (["--advance-time"] if i == 0 else [])
        voted = await cli(*args, key=holder)
        assert voted.exit_code == 0, voted.output
        assert "with 100,000 NDS" in voted.stdout
    status = await status_of(cli, proposal_id)
    assert status["for"] == str(10 * DEV_ACCOUNT_NDS)
    assert status["quorum"] == str(QUORUM)
    assert status["quorum_reached"] is True

    queued = await cli("dao", "queue", str(proposal_id), "--advance-time", key=holders[0])
    assert queued.exit_code == 0, queued.output
    executed = await cli("dao", "execute", str(proposal_id), "--advance-time", key=holders[9])
    assert executed.exit_code == 0, executed.output
    assert (await status_of(cli, proposal_id))["state"] == "Executed"
    assert await subscriptions.functions.pricePerPeriod().call() == 15 * NDS


async def test_a_proposal_that_breaks_the_timing_orderings_is_refused(
    cli: Cli, representative: LocalAccount
) -> None:
    """The challenge window must outlast a governance round (1 + 60 + 30 s locally): the
    timelock's dry run hits the TimingGuard, and the CLI names its error before any vote."""
    refused = await cli(
        "dao", "propose", "set-challenge-period", "91", "-d", "too short", key=representative
    )
    assert refused.exit_code == 1
    assert "ChallengeWindowTooShort" in flat(refused)
    assert "91" in flat(refused)


async def test_queue_advances_past_the_voting_period_and_a_defeated_proposal_says_why(
    w3: Web3Client, deployment: Deployment, cli: Cli, representative: LocalAccount
) -> None:
    proposed = await cli(
        "dao", "propose", "set-min-stake", "250", "-d", "Min stake 250 NDS", key=representative
    )
    proposal_id = proposal_id_of(proposed)
    against = await cli(
        "dao",
        "vote",
        str(proposal_id),
        "against",
        "--advance-time",
        "--reason",
        "too soon",
        key=representative,
    )
    assert against.exit_code == 0, against.output
    governor = contract(w3, deployment, "NodusGovernor")
    (cast,) = await governor.events.VoteCast().get_logs(from_block=0, to_block="latest")
    assert (cast["args"]["support"], cast["args"]["reason"]) == (0, "too soon")
    # An account that delegated only now had no votes at the snapshot: its vote counts nothing.
    late = dev_account(6)
    assert (await cli("dao", "delegate", key=late)).exit_code == 0
    abstain = await cli("dao", "vote", str(proposal_id), "abstain", key=late)
    assert abstain.exit_code == 0, abstain.output
    assert "this vote weighs nothing" in flat(abstain)
    twice = await cli("dao", "vote", str(proposal_id), "for", key=late)
    assert twice.exit_code == 1
    assert "has already voted" in flat(twice)

    too_early = await cli("dao", "queue", str(proposal_id), key=representative)
    assert too_early.exit_code == 1
    assert "closes at" in flat(too_early)
    defeated = await cli("dao", "queue", str(proposal_id), "--advance-time", key=representative)
    assert defeated.exit_code == 1
    assert "Defeated" in flat(defeated)
    assert "quorum not reached" in flat(defeated)
    assert "not more for" in flat(defeated)
    assert (await status_of(cli, proposal_id))["state"] == "Defeated"


async def test_the_dao_revokes_a_pending_root_within_its_challenge_window(
    w3: Web3Client, deployment: Deployment, cli: Cli, representative: LocalAccount
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    oracle = dev_account(1)
    bad = RewardTree.build([(dev_account(7).address, 9_000 * NDS), (dev_account(8).address, 1)])
    await transact(
        w3, oracle, rewards.functions.proposeRoot(1, bad.root, 9_000 * NDS + 1, keccak(b"bad"))
    )

    proposed = await cli(
        "dao",
        "propose",
        "revoke-root",
        "1",
        "0x" + bad.root.hex(),
        "-d",
        "Revoke epoch 1",
        key=representative,
    )
    assert proposed.exit_code == 0, proposed.output
    proposal_id = proposal_id_of(proposed)
    for step in (
        ("vote", str(proposal_id), "for"),
        ("queue", str(proposal_id)),
        ("execute", str(proposal_id)),
    ):
        result = await cli("dao", *step, "--advance-time", key=representative)
        assert result.exit_code == 0, result.output

    # Epoch 1 is settled without a root: it pays nothing, and epoch 2 proceeds.
    assert await rewards.functions.currentEpoch().call() == 1
    assert await rewards.functions.rootEpoch().call() == 0
    assert await rewards.functions.currentRoot().call() == b"\x00" * 32
    good = RewardTree.build([(dev_account(7).address, 5 * NDS), (dev_account(8).address, 1)])
    await transact(
        w3, oracle, rewards.functions.proposeRoot(2, good.root, 5 * NDS + 1, keccak(b"ok"))
    )
    await advance_time(w3, await rewards.functions.challengePeriod().call())
    await transact(w3, dev_account(3), rewards.functions.acceptRoot())
    assert await rewards.functions.rootEpoch().call() == 2
