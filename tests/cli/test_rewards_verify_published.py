"""`nodus rewards verify` on epoch data in the control plane's real published format
(control_plane.rewards.epoch_data.compute_epoch: canonical JSON with metrics, breakdowns,
allocations, previous leaves and leaves): everything is recomputed, from each node's metrics to
the root, and the previous leaves are checked against the last accepted epoch's data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils.crypto import keccak

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.devchain import advance_time, dev_account, transact
from control_plane.rewards.epoch_data import EpochResult, canonical_json, compute_epoch
from control_plane.rewards.merkle import RewardTree
from control_plane.rewards.scoring import NodeMetrics, ProberView
from tests.cli.conftest import NDS, Cli, FakeApi, flat

OP_A, OP_B = dev_account(2).address.lower(), dev_account(3).address.lower()
HOUR = 3_600
START = datetime(2026, 1, 1, tzinfo=UTC)
PROBER = "0x" + "01" * 20


def metrics(node: str, operator: str, answered: int, served: int) -> NodeMetrics:
    return NodeMetrics(
        node_id="0x" + node * 32,
        operator=operator,
        active=True,
        epoch_seconds=HOUR,
        probers=(ProberView(PROBER, 60, answered, 30_000),),
        peers_with_traffic=4,
        peers_with_handshake=3,
        served_bytes=served,
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
            "scores recomputed from each node's metrics (nodus-score/1)",
            "epoch budget (requested, capped by what the pool can still pay)",
            "allocations (budget split over operators by score)",
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
    assert "differs: allocations (budget split over operators by score)" in text
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
