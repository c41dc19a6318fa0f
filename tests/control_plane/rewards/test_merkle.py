"""Our reward tree must match OpenZeppelin's npm StandardMerkleTree leaf for leaf, or operators
could not recompute roots with standard tools (and claims built by one would fail on the other)."""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from eth_utils.address import to_checksum_address

from control_plane.paths import REPO_ROOT
from control_plane.rewards.formula.merkle import RewardTree, checksum_address, leaf_hash

NPM_TREE = REPO_ROOT / "scripts" / "merkle-tree.mjs"


def npm_tree(leaves: list[tuple[str, int]]) -> dict[str, object]:
    args = [x for account, amount in leaves for x in (account, str(amount))]
    out = subprocess.run(
        ["node", str(NPM_TREE), "--json", *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def random_leaves(count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [("0x" + rng.randbytes(20).hex(), rng.randrange(1, 10**27)) for _ in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 13])
def test_root_and_proofs_match_openzeppelin_npm(count: int) -> None:
    leaves = random_leaves(count, seed=count)
    ours = RewardTree.build(leaves)
    theirs = npm_tree(leaves)

    assert "0x" + ours.root.hex() == theirs["root"]
    their_proofs = theirs["proofs"]
    assert isinstance(their_proofs, list)
    for (account, _), their_proof in zip(leaves, their_proofs, strict=True):
        ours_proof = ours.proofs[to_checksum_address(account)]
        assert ["0x" + p.hex() for p in ours_proof] == their_proof


def test_every_proof_verifies_and_a_changed_amount_does_not() -> None:
    tree = RewardTree.build(random_leaves(7, seed=42))
    for account, proof in tree.proofs.items():
        assert tree.verify(account, tree.amounts[account], proof)
        assert not tree.verify(account, tree.amounts[account] + 1, proof)


def test_duplicate_account_and_empty_tree_are_rejected() -> None:
    account = "0x" + "ab" * 20
    with pytest.raises(ValueError, match="duplicate"):
        RewardTree.build([(account, 1), (account.upper().replace("0X", "0x"), 2)])
    with pytest.raises(ValueError, match="at least one"):
        RewardTree.build([])
    with pytest.raises(ValueError, match="uint256"):
        RewardTree.build([(account, 2**256)])


def test_checksums_match_eip55_and_bad_addresses_are_refused() -> None:
    for account, _ in random_leaves(500, seed=7):
        assert checksum_address(account) == to_checksum_address(account)
        assert checksum_address(account.upper().replace("0X", "0x")) == to_checksum_address(account)
    for bad in ("0x1234", "ab" * 20, "0x" + "g" * 40, "0x" + "ab" * 21):
        with pytest.raises(ValueError, match="not an address"):
            checksum_address(bad)
    with pytest.raises(ValueError, match="uint256"):
        leaf_hash("0x" + "ab" * 20, 2**256)
