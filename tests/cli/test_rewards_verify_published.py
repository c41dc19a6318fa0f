"""`nodus rewards verify` on epoch data in the control plane's real published format
(control_plane.rewards.formula.epoch.compute_epoch: canonical JSON with metrics, breakdowns,
allocations, previous leaves and leaves): everything is recomputed, from each node's metrics to
the root, and the previous leaves are checked against the last accepted epoch's data. Epochs are
scored with `nodus-score/2` (each node's part capped by its stake); epochs published under
`nodus-score/1` (tests/cli/fixtures) still verify with version 1's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.rewards.formula.epoch import EpochResult, canonical_json, compute_epoch
from control_plane.rewards.formula.merkle import RewardTree
from control_plane.rewards.formula.scoring import NodeMetrics, ProberView
from tests.cli.conftest import NDS, Cli, FakeApi, flat
from tests.support.devchain import advance_time, dev_account, transact

OP_A, OP_B = dev_account(2).address.lower(), dev_account(3).address.lower()
HOUR = 3_600
START = datetime(2026, 1, 1, tzinfo=UTC)
PROBER = "0x" + "01" * 20


FIXTURES = Path(__file__).parent / "fixtures"


def metrics(
    node: str, operator: str, answered: int, served: int, stake: int = 100 * NDS
) -> NodeMetrics:
    return NodeMetrics(
        node_id="0x" + node * 32,
        operator=operator,
        active=True,
        epoch_seconds=HOUR,
        probers=(ProberView(PROBER, 60, answered, 30_000, epoch_rounds=60),),
        peers_with_traffic=4,
        peers_with_handshake=3,
        served_bytes=served,
        agent="0x" + "ee" * 20,
        stake=stake,
        own_wallets=1,
    )


def epoch_of(epoch: int, previous: dict[str, int], funded: int) -> EpochResult:
    """Three nodes of two operators, one of them flaky."""
    return compute_epoch(
        chain_id=31337,
        epoch=epoch,
        start=START + timedelta(hours=epoch - 1),
        end=START + timedelta(hours=epoch),
        requested_budget=1_000 * NDS,
        total_funded=funded,
        previous_cumulative=previous,
        metrics=[
            metrics("a1", OP_A, 60, 4 * 10**9),
            metrics("a2", OP_A, 30, 10**9),
            metrics("b1", OP_B, 57, 8 * 10**9),
        ],
        probe_rounds=60,
    )


async def post(
    w3: Web3Client, deployment: Deployment, api: FakeApi, epoch: int, data: bytes, accept: bool
) -> None:
    """The oracle proposes the data's root and hash; the API serves the bytes."""
    document = json.loads(data)
    rewards = contract(w3, deployment, "RewardDistributor")
    root = bytes.fromhex(document["root"][2:])
    total = int(document["total_cumulative"])
    await transact(
        w3, dev_account(1), rewards.functions.proposeRoot(epoch, root, total, keccak(data))
    )
    api.routes[f"/v1/epochs/{epoch}/data"] = (200, data)
    if accept:
        await advance_time(w3, await rewards.functions.challengePeriod().call())
        await transact(w3, dev_account(4), rewards.functions.acceptRoot())


def restate(document: dict[str, Any]) -> bytes:
    """A document re-sealed after an edit: leaves, total and root made consistent again."""
    leaves = {leaf["account"]: int(leaf["cumulative_amount"]) for leaf in document["leaves"]}
    document["total_cumulative"] = str(sum(leaves.values()))
    document["root"] = "0x" + RewardTree.build(leaves.items()).root.hex()
    return canonical_json(document)


async def test_published_epochs_verify_from_metrics_to_root(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    funded = await contract(w3, deployment, "RewardDistributor").functions.totalFunded().call()
    first = epoch_of(1, {}, funded)
    await post(w3, deployment, fake_api, 1, first.data, accept=True)
    second = epoch_of(2, first.cumulative, funded)
    await post(w3, deployment, fake_api, 2, second.data, accept=False)

    for epoch in (1, 2):
        result = await cli("rewards", "verify", str(epoch), "--api-url", fake_api.url)
        assert result.exit_code == 0, result.output
        assert f"epoch {epoch}: verified" in result.stdout
        report = await cli("rewards", "verify", str(epoch), "--api-url", fake_api.url, "--json")
        assert report.exit_code == 0, report.output
        checks = {c["check"]: c["ok"] for c in json.loads(report.stdout)["checks"]}
        assert all(checks.values())
        assert {
            "data hash (keccak256 of the published bytes)",
            "Merkle root of the leaves",
            "scores recomputed from each node's metrics (nodus-score/2)",
            "each node's uptime counts every probe round of the epoch",
            "epoch budget (requested, capped by what the pool can still pay)",
            "allocations (budget split over nodes by score, each capped by its stake)",
            "each node's cap = 10 x its stake",
            "each node's part (capped)",
            "allocated (what the caps left stays in the pool)",
            "leaves = previous leaves + allocations",
            "previous leaves = those of the last accepted epoch",
        } <= set(checks)
    assert "data of epoch 1 (the last accepted before) matches its hash" in checks


async def test_an_oracle_that_pays_itself_more_than_the_scores_say_is_caught(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    funded = await contract(w3, deployment, "RewardDistributor").functions.totalFunded().call()
    honest = epoch_of(1, {}, funded)
    document = json.loads(honest.data)
    # Move 100 NDS from B to A, consistently in allocations, leaves, total and root: the hash and
    # the root match what goes on-chain, but not what the published scores allow.
    for part in document["allocations"]:
        delta = 100 * NDS if part["operator"] == OP_A else -100 * NDS
        part["amount"] = str(int(part["amount"]) + delta)
    for leaf in document["leaves"]:
        delta = 100 * NDS if leaf["account"] == OP_A else -100 * NDS
        leaf["cumulative_amount"] = str(int(leaf["cumulative_amount"]) + delta)
    await post(w3, deployment, fake_api, 1, restate(document), accept=False)

    result = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert result.exit_code == 1
    text = flat(result)
    assert "differs: allocations (budget split over nodes by score" in text
    assert "differs: data hash" not in text
    assert "differs: Merkle root" not in text
    assert "epoch 1: NOT verified" in text


async def test_inflated_metrics_or_breakdowns_and_forged_history_are_caught(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    funded = await contract(w3, deployment, "RewardDistributor").functions.totalFunded().call()
    first = epoch_of(1, {}, funded)
    await post(w3, deployment, fake_api, 1, first.data, accept=True)

    # Epoch 2 claims A had earned more before (previous leaves), and a node's breakdown is raised.
    second = epoch_of(
        2, {OP_A: first.cumulative[OP_A] + 5 * NDS, OP_B: first.cumulative[OP_B]}, funded
    )
    document = json.loads(second.data)
    flaky = document["nodes"][1]  # a2, which missed half its probe rounds
    assert flaky["node_id"] == "0x" + "a2" * 32
    flaky["breakdown"]["uptime"]["value_ppm"] = 1_000_000
    await post(w3, deployment, fake_api, 2, restate(document), accept=False)

    result = await cli("rewards", "verify", "2", "--api-url", fake_api.url)
    assert result.exit_code == 1
    text = flat(result)
    assert "differs: scores recomputed from each node's metrics" in text
    assert "differ for 0xa2a2a2" in text
    assert f"published {OP_A[:8]}…{OP_A[-6:]}: " in text  # the forged account, named
    assert "differs: previous leaves = those of the last accepted epoch" in text
    assert "differs: data hash" not in text


async def test_epochs_published_under_version_1_still_verify(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    """Bytes the control plane published under nodus-score/1 (before version 2), unchanged."""
    first = (FIXTURES / "epoch1.nodus-score-1.json").read_bytes()
    second = (FIXTURES / "epoch2.nodus-score-1.json").read_bytes()
    await post(w3, deployment, fake_api, 1, first, accept=True)
    await post(w3, deployment, fake_api, 2, second, accept=False)
    for epoch in (1, 2):
        report = await cli("rewards", "verify", str(epoch), "--api-url", fake_api.url, "--json")
        assert report.exit_code == 0, report.output
        checks = {c["check"]: c["ok"] for c in json.loads(report.stdout)["checks"]}
        assert all(checks.values())
        assert "scores recomputed from each node's metrics (nodus-score/1)" in checks
        assert "allocations (budget split over operators by score)" in checks

    # Version 1's rules, not version 2's: the same data re-labelled as version 2 fails.
    relabelled = json.loads(first)
    relabelled["formula"]["version"] = "nodus-score/2"
    fake_api.routes["/v1/epochs/1/data"] = (200, canonical_json(relabelled))
    result = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert result.exit_code == 1


def lone_epoch(funded: int) -> EpochResult:
    """One node, 10 NDS staked, alone in an epoch with a 1,000 NDS budget: its cap is 100 NDS."""
    return compute_epoch(
        chain_id=31337,
        epoch=1,
        start=START,
        end=START + timedelta(hours=1),
        requested_budget=1_000 * NDS,
        total_funded=funded,
        previous_cumulative={},
        metrics=[metrics("c1", OP_A, 60, 4 * 10**9, stake=10 * NDS)],
        probe_rounds=60,
    )


async def test_the_stake_cap_is_recomputed_and_what_it_withholds_stays_in_the_pool(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    funded = await contract(w3, deployment, "RewardDistributor").functions.totalFunded().call()
    honest = lone_epoch(funded)
    assert honest.allocations == {OP_A: 100 * NDS}
    await post(w3, deployment, fake_api, 1, honest.data, accept=False)
    report = await cli("rewards", "verify", "1", "--api-url", fake_api.url, "--json")
    assert report.exit_code == 0, report.output
    checks = {c["check"]: c for c in json.loads(report.stdout)["checks"]}
    assert all(c["ok"] for c in checks.values())
    assert checks["allocated (what the caps left stays in the pool)"]["published"] == "100 NDS"


async def test_an_allocation_above_the_stake_cap_is_caught(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    """The oracle pays the lone node the whole budget, consistently everywhere the data says it
    (its part, the operator's, the allocated total, the leaf, the total and the root)."""
    funded = await contract(w3, deployment, "RewardDistributor").functions.totalFunded().call()
    document = json.loads(lone_epoch(funded).data)
    document["nodes"][0]["allocation"]["amount"] = str(1_000 * NDS)
    document["allocations"][0]["amount"] = str(1_000 * NDS)
    document["budget"]["allocated"] = str(1_000 * NDS)
    document["leaves"][0]["cumulative_amount"] = str(1_000 * NDS)
    await post(w3, deployment, fake_api, 1, restate(document), accept=False)

    result = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert result.exit_code == 1
    text = flat(result)
    assert "differs: each node's part (capped)" in text
    assert "differs: allocated (what the caps left stays in the pool): published 1,000 NDS" in text
    assert "differs: allocations (budget split over nodes by score" in text
    assert "differs: data hash" not in text
    assert "differs: Merkle root" not in text
    assert "epoch 1: NOT verified" in text
