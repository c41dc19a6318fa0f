"""`nodus rewards watch`: the oracle (anvil account 1) proposes roots on the real contracts; the
epoch data is served in the control plane's published format; the watcher runs with the
guardian's own key (anvil account 2, the local deployment's NODUS_GUARDIAN) or with none."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.rewards.formula.merkle import RewardTree
from tests.cli.conftest import NDS, Cli, FakeApi, flat
from tests.cli.test_rewards_verify_published import OP_A, epoch_of, post
from tests.support.devchain import advance_time, dev_account, transact

GUARDIAN = dev_account(2)
ORACLE = dev_account(1)


async def propose_wrong_root(w3: Web3Client, deployment: Deployment, api: FakeApi) -> bytes:
    """Epoch 1's honest data is published and its hash goes on-chain, but the root proposed
    with it pays operator A the whole declared total: a root the data does not back."""
    rewards = contract(w3, deployment, "RewardDistributor")
    honest = epoch_of(1, {}, await rewards.functions.totalFunded().call())
    total = sum(honest.cumulative.values())
    wrong = RewardTree.build([(OP_A, total)]).root
    await transact(w3, ORACLE, rewards.functions.proposeRoot(1, wrong, total, keccak(honest.data)))
    api.routes["/v1/epochs/1/data"] = (200, honest.data)
    return wrong


async def test_the_guardian_watcher_revokes_a_wrong_root_which_can_then_never_be_accepted(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    wrong = await propose_wrong_root(w3, deployment, fake_api)
    assert await rewards.functions.hasRole(
        await rewards.functions.GUARDIAN_ROLE().call(), GUARDIAN.address
    ).call()

    result = await cli("rewards", "watch", "--once", "--api-url", fake_api.url, key=GUARDIAN)

    assert result.exit_code == 0, result.output
    text = flat(result)
    assert f"REVOKED epoch 1 root 0x{wrong.hex()}" in text
    assert "Merkle root of the leaves" in text  # says why
    revoked = await rewards.events.RootRevoked().get_logs(from_block=0)
    assert [(e["args"]["epoch"], bytes(e["args"]["root"])) for e in revoked] == [(1, wrong)]
    assert (await rewards.functions.pendingRoot().call())[3] == 0
    # After the window the wrong root cannot be accepted, nor its epoch proposed again.
    await advance_time(w3, await rewards.functions.challengePeriod().call() + 1)
    with pytest.raises(ContractCustomError):
        await rewards.functions.acceptRoot().call({"from": dev_account(5).address})
    with pytest.raises(ContractCustomError):
        await rewards.functions.proposeRoot(1, wrong, 1, keccak(b"x")).call(
            {"from": ORACLE.address}
        )
    assert await rewards.functions.currentRoot().call() == b"\0" * 32
    assert await rewards.functions.currentEpoch().call() == 1


async def test_the_watcher_leaves_a_correct_root_alone(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    honest = epoch_of(1, {}, await rewards.functions.totalFunded().call())
    await post(w3, deployment, fake_api, 1, honest.data, accept=False)

    result = await cli("rewards", "watch", "--once", "--api-url", fake_api.url, key=GUARDIAN)

    assert result.exit_code == 0, result.output
    assert "epoch 1 root" in result.stdout
    assert "verified against its published data" in result.stdout
    assert await rewards.events.RootRevoked().get_logs(from_block=0) == []
    await advance_time(w3, await rewards.functions.challengePeriod().call())
    await transact(w3, dev_account(5), rewards.functions.acceptRoot())
    assert await rewards.functions.rootEpoch().call() == 1


async def test_a_watcher_without_the_guardian_role_raises_the_alarm_and_exits_1(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    wrong = await propose_wrong_root(w3, deployment, fake_api)

    for key in (None, dev_account(6)):  # no key at all, or a key that is no guardian
        result = await cli("rewards", "watch", "--once", "--api-url", fake_api.url, key=key)

        assert result.exit_code == 1, result.output
        text = flat(result)
        assert f"ALERT: epoch 1 root 0x{wrong.hex()} does NOT match its published data" in text
        assert f"revokeEpoch(1, 0x{wrong.hex()})" in text
    assert (await rewards.functions.pendingRoot().call())[3] == 1  # nothing was revoked


async def test_unpublished_data_is_an_alert_and_no_pending_root_is_quiet(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    quiet = await cli("rewards", "watch", "--once", "--api-url", fake_api.url)
    assert quiet.exit_code == 0, quiet.output
    assert "no pending root" in quiet.stdout
    # A key that is given but unreadable is refused, never silently dropped.
    broken = await cli(
        "rewards", "watch", "--once", "--api-url", fake_api.url,
        env={"NODUS_PRIVATE_KEY": "0xnot-a-key"},
    )  # fmt: skip
    assert broken.exit_code == 2
    assert "NODUS_PRIVATE_KEY" in flat(broken)

    rewards = contract(w3, deployment, "RewardDistributor")
    await transact(
        w3, ORACLE, rewards.functions.proposeRoot(1, b"\1" * 32, 5 * NDS, keccak(b"hidden"))
    )
    result = await cli("rewards", "watch", "--once", "--api-url", fake_api.url, key=GUARDIAN)
    assert result.exit_code == 1
    assert "ALERT: epoch 1 root 0x0101" in flat(result)
    assert "cannot be checked" in flat(result)
    assert (await rewards.functions.pendingRoot().call())[3] == 1
