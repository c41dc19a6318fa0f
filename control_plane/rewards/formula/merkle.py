"""Cumulative reward trees, built exactly as OpenZeppelin's StandardMerkleTree builds them.

Leaves are `keccak256(keccak256(abi.encode(address account, uint256 cumulativeAmount)))`; pairs
are hashed sorted; leaves are sorted by hash and laid out as `@openzeppelin/merkle-tree` does, so
the npm library, this module and `RewardDistributor.claim` agree on every root and proof.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak


def leaf_hash(account: str, cumulative_amount: int) -> bytes:
    """The leaf of `(account, cumulative_amount)`, double-hashed against second preimages."""
    return keccak(keccak(encode(["address", "uint256"], [account, cumulative_amount])))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True, slots=True)
class RewardTree:
    """A tree of cumulative amounts per account, with a proof per account."""

    root: bytes
    proofs: dict[ChecksumAddress, list[bytes]]
    amounts: dict[ChecksumAddress, int]

    @classmethod
    def build(cls, cumulative: Iterable[tuple[str, int]]) -> RewardTree:
        amounts: dict[ChecksumAddress, int] = {}
        for account, amount in cumulative:
            address = to_checksum_address(account)
            if address in amounts:
                raise ValueError(f"duplicate account {address}")
            if not 0 <= amount < 2**256:
                raise ValueError(f"amount out of uint256 range for {address}")
            amounts[address] = amount
        if not amounts:
            raise ValueError("a reward tree needs at least one leaf")

        hashed = sorted(((leaf_hash(a, v), a) for a, v in amounts.items()), key=lambda x: x[0])
        # The npm library's layout: a complete binary tree in an array, leaves at the end in
        # reverse sorted order, each inner node the sorted-pair hash of its two children.
        size = 2 * len(hashed) - 1
        nodes: list[bytes] = [b""] * size
        position: dict[ChecksumAddress, int] = {}
        for i, (h, account) in enumerate(hashed):
            nodes[size - 1 - i] = h
            position[account] = size - 1 - i
        for i in range(size - len(hashed) - 1, -1, -1):
            nodes[i] = _hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])

        proofs: dict[ChecksumAddress, list[bytes]] = {}
        for account, index in position.items():
            proof = []
            while index > 0:
                sibling = index + 1 if index % 2 == 1 else index - 1
                proof.append(nodes[sibling])
                index = (index - 1) // 2
            proofs[account] = proof
        return cls(root=nodes[0], proofs=proofs, amounts=amounts)

    def verify(self, account: str, amount: int, proof: list[bytes]) -> bool:
        """What `MerkleProof.verify` checks on-chain."""
        computed = leaf_hash(account, amount)
        for sibling in proof:
            computed = _hash_pair(computed, sibling)
        return computed == self.root
