"""`nodus rewards` against the real RewardDistributor. The control plane's reward endpoints are
stood in for by a tiny local HTTP server serving what the test publishes itself (a tree built
with control_plane.rewards.formula.merkle, proposed by the oracle dev account 1)."""

from __future__ import annotations

import json

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.rewards.formula.merkle import RewardTree
from tests.cli.conftest import NDS, Cli, FakeApi, flat
from tests.support.devchain import advance_time, dev_account, transact

OP_A, OP_B = dev_account(2), dev_account(3)


def published(epoch: int, tree: RewardTree) -> bytes:
    """Epoch data in the documented shape: cumulative leaves with decimal-string amounts."""
    leaves = [{"account": a, "amount": str(v)} for a, v in sorted(tree.amounts.items())]
    return json.dumps({"epoch": epoch, "root": "0x" + tree.root.hex(), "leaves": leaves}).encode()


async def propose(
    w3: Web3Client, deployment: Deployment, epoch: int, root: bytes, total: int, data: bytes
) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    await transact(
        w3, dev_account(1), rewards.functions.proposeRoot(epoch, root, total, keccak(data))
    )


async def accept(w3: Web3Client, deployment: Deployment) -> None:
    rewards = contract(w3, deployment, "RewardDistributor")
    await advance_time(w3, await rewards.functions.challengePeriod().call())
    await transact(w3, dev_account(4), rewards.functions.acceptRoot())


def serve_rewards(
    api: FakeApi, account: LocalAccount, tree: RewardTree, epoch: int, claimed: int = 0
) -> None:
    amount = tree.amounts[account.address]
    api.json(
        f"/v1/rewards/{account.address}",
        {
            "cumulative": str(amount),
            "claimed": str(claimed),
            "claimable": str(amount - claimed),
            "epoch": epoch,
            "proof": ["0x" + p.hex() for p in tree.proofs[account.address]],
        },
    )


async def test_verify_recomputes_root_and_hash_of_the_published_data(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    tree = RewardTree.build([(OP_A.address, 123 * NDS + 7), (OP_B.address, 50 * NDS)])
    data = published(1, tree)
    await propose(w3, deployment, 1, tree.root, 173 * NDS + 7, data)
    fake_api.routes["/v1/epochs/1/data"] = (200, data)

    pending = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert pending.exit_code == 0, pending.output
    assert "epoch 1: verified" in pending.stdout
    assert "pending" in pending.stdout

    await accept(w3, deployment)
    accepted = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert accepted.exit_code == 0, accepted.output
    assert "on-chain status: accepted" in accepted.stdout


async def test_verify_fails_with_what_differs(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    tree = RewardTree.build([(OP_A.address, 10 * NDS), (OP_B.address, 20 * NDS)])
    data = published(1, tree)
    await propose(w3, deployment, 1, tree.root, 30 * NDS, data)

    # Someone edits one amount after the fact: neither the bytes nor the root match any more.
    edited = data.replace(str(10 * NDS).encode(), str(11 * NDS).encode())
    fake_api.routes["/v1/epochs/1/data"] = (200, edited)
    result = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert result.exit_code == 1
    text = flat(result)
    assert "epoch 1: NOT verified" in text
    assert "differs: data hash" in text
    assert "differs: Merkle root of the leaves" in text
    assert "differs: sum of the leaves" in text

    # An oracle that posts a root other than its data's: the hash matches, the root does not.
    other = RewardTree.build([(OP_A.address, 30 * NDS), (OP_B.address, 1)])
    honest_data = published(2, other)
    await accept(w3, deployment)
    await propose(w3, deployment, 2, tree.root, 30 * NDS, honest_data)
    fake_api.routes["/v1/epochs/2/data"] = (200, honest_data)
    lying = await cli("rewards", "verify", "2", "--api-url", fake_api.url)
    assert lying.exit_code == 1
    text = flat(lying)
    assert "differs: data hash" not in text
    assert "published 30.000000000000000001 NDS, expected 30 NDS" in text
    assert "differs: Merkle root of the leaves" in text
    assert "differs: root stated in the data" in text


async def test_verify_of_an_epoch_never_proposed_or_never_published(
    cli: Cli, deployment: Deployment, w3: Web3Client, fake_api: FakeApi
) -> None:
    never = await cli("rewards", "verify", "7", "--api-url", fake_api.url)
    assert never.exit_code == 1
    assert "epoch 7 was never proposed" in flat(never)

    tree = RewardTree.build([(OP_A.address, NDS)])
    await propose(w3, deployment, 1, tree.root, NDS, published(1, tree))
    unpublished = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert unpublished.exit_code == 1
    assert "/v1/epochs/1/data: not found" in flat(unpublished)

    fake_api.routes["/v1/epochs/1/data"] = (200, b"<html>oops</html>")
    garbage = await cli("rewards", "verify", "1", "--api-url", fake_api.url)
    assert garbage.exit_code == 1
    assert "malformed" in flat(garbage)


async def test_claim_pays_exactly_the_unclaimed_amount_across_epochs(
    w3: Web3Client, deployment: Deployment, cli: Cli, fake_api: FakeApi
) -> None:
    token = contract(w3, deployment, "NDSToken")
    epoch1 = RewardTree.build([(OP_A.address, 123 * NDS + 7), (OP_B.address, 50 * NDS)])
    await propose(w3, deployment, 1, epoch1.root, 173 * NDS + 7, published(1, epoch1))
    serve_rewards(fake_api, OP_A, epoch1, 1)

    # Still in its challenge window: the API's proof is not for the chain's current root.
    early = await cli("rewards", "claim", "--api-url", fake_api.url, key=OP_A)
    assert early.exit_code == 1
    assert "claim after it is accepted" in flat(early)

    await accept(w3, deployment)
    shown = await cli("rewards", "show", "--api-url", fake_api.url, "--json", key=OP_A)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["claimable"] == str(123 * NDS + 7)

    before = await token.functions.balanceOf(OP_A.address).call()
    claimed = await cli("rewards", "claim", "--api-url", fake_api.url, key=OP_A)
    assert claimed.exit_code == 0, claimed.output
    assert "claimed 123.000000000000000007 NDS" in claimed.stdout
    assert await token.functions.balanceOf(OP_A.address).call() == before + 123 * NDS + 7

    again = await cli("rewards", "claim", "--api-url", fake_api.url, key=OP_A)
    assert again.exit_code == 0
    assert "nothing to claim" in again.stdout

    # Epoch 2: a single claim pays only what epoch 2 added for A, and both epochs for B.
    epoch2 = RewardTree.build([(OP_A.address, 200 * NDS), (OP_B.address, 80 * NDS)])
    await propose(w3, deployment, 2, epoch2.root, 280 * NDS, published(2, epoch2))
    await accept(w3, deployment)
    serve_rewards(fake_api, OP_A, epoch2, 2, claimed=123 * NDS + 7)
    serve_rewards(fake_api, OP_B, epoch2, 2)
    assert (await cli("rewards", "claim", "--api-url", fake_api.url, key=OP_A)).exit_code == 0
    assert await token.functions.balanceOf(OP_A.address).call() == before + 200 * NDS
    # Anyone may send B's claim (here A's key); the NDS go to B.
    before_b = await token.functions.balanceOf(OP_B.address).call()
    for_b = await cli(
        "rewards", "claim", "--address", OP_B.address, "--api-url", fake_api.url, key=OP_A
    )
    assert for_b.exit_code == 0, for_b.output
    assert await token.functions.balanceOf(OP_B.address).call() == before_b + 80 * NDS

    history = await cli("rewards", "history", "--json", key=OP_A)
    assert history.exit_code == 0, history.output
    record = json.loads(history.stdout)
    assert [(c["epoch"], c["amount"]) for c in record["claims"]] == [
        (1, str(123 * NDS + 7)),
        (2, str(200 * NDS - 123 * NDS - 7)),
    ]
    assert [(e["epoch"], e["status"]) for e in record["epochs"]] == [
        (1, "accepted"),
        (2, "accepted"),
    ]
    table = await cli("rewards", "history", "--address", OP_B.address)
    assert table.exit_code == 0, table.output
    assert "80 NDS" in table.stdout


async def test_show_without_rewards_and_with_an_unreachable_api(
    cli: Cli, deployment: Deployment, fake_api: FakeApi
) -> None:
    nothing = await cli("rewards", "show", "--address", OP_A.address, "--api-url", fake_api.url)
    assert nothing.exit_code == 0, nothing.output
    assert "has no rewards yet" in nothing.stdout
    down = await cli(
        "rewards", "show", "--address", OP_A.address, "--api-url", "http://127.0.0.1:9"
    )
    assert down.exit_code == 4  # unreachable (support/exits.py)
    assert "cannot reach the Nodus API" in flat(down)
    no_key = await cli("rewards", "show", "--api-url", fake_api.url)
    assert no_key.exit_code == 2
    assert "pass --address" in flat(no_key)
