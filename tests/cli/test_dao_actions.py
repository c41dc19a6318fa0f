"""Each typed `nodus dao propose` action puts exactly the intended calls on-chain: the test reads
the ProposalCreated event itself and decodes every calldata with the target's ABI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from control_plane.chain.contracts import Deployment, Web3Client, contract, node_id_of
from control_plane.rewards.formula.merkle import RewardTree
from tests.cli.conftest import NDS, Cli, flat, proposal_id_of
from tests.support.devchain import dev_account, transact

NODE_SALT = bytes.fromhex("6e6f6465" + "00" * 27 + "a1")
# What the world fixture's operator (dev account 7) registers with NODE_SALT.
NODE_ID = bytes.fromhex(node_id_of(dev_account(7).address, NODE_SALT)[2:])
PENDING = RewardTree.build([(dev_account(7).address, 700 * NDS), (dev_account(8).address, 3)])
ORACLE_ROLE = keccak(text="ORACLE_ROLE")
OLD_ORACLE = dev_account(1).address
NEW_ORACLE = dev_account(9).address


@dataclass(frozen=True)
class Case:
    args: list[str]
    calls: list[tuple[str, str, list[object]]]  # (contract, function, decoded arguments)


CASES = {
    "set-price": Case(
        ["set-price", "12.5"], [("SubscriptionManager", "setPrice", [12_500_000_000_000_000_000])]
    ),
    "set-revenue-split": Case(
        ["set-revenue-split", "7500"], [("SubscriptionManager", "setRevenueSplit", [7500])]
    ),
    "set-min-stake": Case(["set-min-stake", "250"], [("NodeRegistry", "setMinStake", [250 * NDS])]),
    "set-unbonding-period": Case(
        ["set-unbonding-period", "7200"], [("NodeRegistry", "setUnbondingPeriod", [7200])]
    ),
    "set-epoch-budget": Case(
        ["set-epoch-budget", "20000.000000000000000001"],
        [("RewardDistributor", "setEpochBudget", [20_000 * NDS + 1])],
    ),
    "set-challenge-period": Case(
        ["set-challenge-period", "300"], [("RewardDistributor", "setChallengePeriod", [300])]
    ),
    "set-oracle": Case(
        ["set-oracle", NEW_ORACLE, "--old", OLD_ORACLE],
        [
            ("RewardDistributor", "revokeRole", [ORACLE_ROLE, OLD_ORACLE]),
            ("RewardDistributor", "grantRole", [ORACLE_ROLE, NEW_ORACLE]),
        ],
    ),
    "slash": Case(
        ["slash", "0x" + NODE_ID.hex(), "40", "--reason", "lied in heartbeats"],
        [("NodeRegistry", "slash", [NODE_ID, 40 * NDS, b"lied in heartbeats".ljust(32, b"\0")])],
    ),
    "revoke-root": Case(
        ["revoke-root", "1", "0x" + PENDING.root.hex()],
        [("RewardDistributor", "revokeEpoch", [1, PENDING.root])],
    ),
}


@pytest.fixture
async def world(w3: Web3Client, deployment: Deployment) -> None:
    """A registered node (to slash) and a pending root (to revoke)."""
    operator = dev_account(7)
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    rewards = contract(w3, deployment, "RewardDistributor")
    await transact(w3, operator, token.functions.approve(registry.address, 200 * NDS))
    await transact(
        w3,
        operator,
        registry.functions.register(
            NODE_SALT, 200 * NDS, dev_account(8).address, "https://n.example"
        ),
    )
    total = sum(PENDING.amounts.values())
    await transact(
        w3, dev_account(1), rewards.functions.proposeRoot(1, PENDING.root, total, keccak(b"d"))
    )


async def created_event(w3: Web3Client, deployment: Deployment, proposal_id: int) -> dict[str, Any]:
    governor = contract(w3, deployment, "NodusGovernor")
    logs = await governor.events.ProposalCreated().get_logs(from_block=0, to_block="latest")
    (event,) = [e for e in logs if e["args"]["proposalId"] == proposal_id]
    return dict(event["args"])


@pytest.mark.parametrize("name", list(CASES))
async def test_each_typed_action_proposes_the_intended_calldata(
    name: str,
    w3: Web3Client,
    deployment: Deployment,
    cli: Cli,
    representative: LocalAccount,
    world: None,
) -> None:
    case = CASES[name]
    description = f"Nodus test: {name}\n\nWhy: because the test says so."
    result = await cli(
        "dao", "propose", *case.args, "--description", description, key=representative
    )
    assert result.exit_code == 0, result.output

    args = await created_event(w3, deployment, proposal_id_of(result))
    assert args["description"] == description
    assert args["targets"] == [deployment.addresses[c] for c, _, _ in case.calls]
    assert args["values"] == [0] * len(case.calls)
    decoded = []
    for (target_name, _, _), calldata in zip(case.calls, args["calldatas"], strict=True):
        function, values = contract(w3, deployment, target_name).decode_function_input(calldata)
        decoded.append((target_name, function.fn_name, list(values.values())))
    assert decoded == case.calls

    status = await cli("dao", "status", str(proposal_id_of(result)))
    assert status.exit_code == 0, status.output
    assert "Pending" in status.stdout


async def test_raw_calldata_and_value_are_proposed_as_given(
    w3: Web3Client, deployment: Deployment, cli: Cli, representative: LocalAccount
) -> None:
    token = contract(w3, deployment, "NDSToken")
    calldata = token.encode_abi("transfer", args=[NEW_ORACLE, 3 * NDS])
    # The timelock holds no ETH to send, so a dry run fails: --force proposes it anyway.
    refused = await cli(
        "dao",
        "propose",
        "raw",
        "--target",
        token.address,
        "--calldata",
        calldata,
        "--value",
        "5",
        "-d",
        "raw",
        key=representative,
    )
    assert refused.exit_code == 1
    assert "--force" in flat(refused)
    result = await cli(
        "dao",
        "propose",
        "raw",
        "--target",
        token.address,
        "--calldata",
        calldata,
        "--value",
        "5",
        "-d",
        "raw",
        "--force",
        key=representative,
    )
    assert result.exit_code == 0, result.output
    args = await created_event(w3, deployment, proposal_id_of(result))
    assert args["targets"] == [token.address]
    assert args["values"] == [5]
    assert args["calldatas"] == [bytes.fromhex(calldata[2:])]


async def test_actions_that_cannot_execute_are_refused_before_a_vote(
    cli: Cli, representative: LocalAccount
) -> None:
    # No pending root: the timelock's dry run reverts with NoPendingRoot.
    revoke = await cli(
        "dao",
        "propose",
        "revoke-root",
        "1",
        "0x" + PENDING.root.hex(),
        "-d",
        "x",
        key=representative,
    )
    assert revoke.exit_code == 1
    assert "NoPendingRoot()" in flat(revoke)
    # An --old that is not an oracle is a typo, not a proposal.
    oracle = await cli(
        "dao",
        "propose",
        "set-oracle",
        NEW_ORACLE,
        "--old",
        NEW_ORACLE.lower(),
        "-d",
        "x",
        key=representative,
    )
    assert oracle.exit_code == 2
    assert "both the new oracle and an --old one" in flat(oracle)
    unknown = await cli(
        "dao",
        "propose",
        "set-oracle",
        NEW_ORACLE,
        "--old",
        dev_account(2).address,
        "-d",
        "x",
        key=representative,
    )
    assert unknown.exit_code == 2
    assert f"current oracle(s): {OLD_ORACLE}" in flat(unknown)
    slash = await cli(
        "dao",
        "propose",
        "slash",
        "0x" + NODE_ID.hex(),
        "1",
        "--reason",
        "r",
        "-d",
        "x",
        key=representative,
    )
    assert slash.exit_code == 2
    assert "there is no node" in flat(slash)


async def test_the_same_proposal_twice_is_refused_with_its_id(
    cli: Cli, representative: LocalAccount
) -> None:
    first = await cli("dao", "propose", "set-price", "11", "-d", "same", key=representative)
    assert first.exit_code == 0, first.output
    again = await cli("dao", "propose", "set-price", "11", "-d", "same", key=representative)
    assert again.exit_code == 1
    assert str(proposal_id_of(first)) in flat(again)


async def test_a_description_is_shown_as_text_never_as_terminal_markup(
    cli: Cli, representative: LocalAccount
) -> None:
    title = "[bold]Cheaper[/bold] [link=https://evil.example]click[/link]"
    proposed = await cli("dao", "propose", "set-price", "9", "-d", title, key=representative)
    assert proposed.exit_code == 0, proposed.output
    status = await cli("dao", "status", str(proposal_id_of(proposed)))
    assert status.exit_code == 0, status.output
    assert title in status.stdout


@pytest.mark.parametrize(
    ("args", "bounds"),
    [
        (["set-unbonding-period", "60"], "3600<=x<=31536000 (NodeRegistry.MIN_UNBONDING_PERIOD"),
        (
            ["set-challenge-period", str(30 * 86_400 + 1)],
            "1<=x<=2592000 (RewardDistributor.MIN_CHALLENGE_PERIOD",
        ),
    ],
    ids=["unbonding", "challenge"],
)
async def test_period_bounds_are_the_deployed_contracts_constants(
    cli: Cli, w3: Web3Client, args: list[str], bounds: str
) -> None:
    """A period outside the contract's own MIN_/MAX_ constants is a usage error named with the
    constants, before any key is needed or any transaction is built."""
    before = await w3.eth.block_number
    refused = await cli("dao", "propose", *args, "-d", "out of bounds")
    assert refused.exit_code == 2
    assert bounds in flat(refused)
    assert "Traceback" not in refused.output
    assert await w3.eth.block_number == before
