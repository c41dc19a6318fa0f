"""Cumulative reward trees, built exactly as OpenZeppelin's StandardMerkleTree builds them.

Leaves are `keccak256(keccak256(abi.encode(address account, uint256 cumulativeAmount)))`; pairs
are hashed sorted; leaves are sorted by hash and laid out as `@openzeppelin/merkle-tree` does, so
the npm library, this module and `RewardDistributor.claim` agree on every root and proof.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from eth_hash.auto import keccak
from eth_typing import ChecksumAddress

# An epoch hashes every operator's leaf and checksums every address: done by hand here (the same
# bytes eth_abi and eth_utils produce, as the tests check) at a quarter of their per-call cost.
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_WORD = 32


def _address_bytes(account: str) -> bytes:
    if not _ADDRESS.fullmatch(account):
        raise ValueError(f"not an address: {account!r}")
    return bytes.fromhex(account[2:])


def checksum_address(account: str) -> ChecksumAddress:
    """EIP-55: a hex letter is upper-cased where the keccak of the lower-case hex has a nibble
    of 8 or more."""
    lower = _address_bytes(account).hex()
    nibbles = keccak(lower.encode()).hex()
    pairs = zip(lower, nibbles[:40], strict=True)
    mixed = "".join(c.upper() if n in "89abcdef" else c for c, n in pairs)
    return cast(ChecksumAddress, "0x" + mixed)


def leaf_hash(account: str, cumulative_amount: int) -> bytes:
    """The leaf of `(account, cumulative_amount)`, double-hashed against second preimages:
    `keccak256(keccak256(abi.encode(address, uint256)))`."""
    if not 0 <= cumulative_amount < 2**256:
        raise ValueError("amount out of uint256 range")
    encoded = _address_bytes(account).rjust(_WORD, b"\0") + cumulative_amount.to_bytes(_WORD, "big")
    return keccak(keccak(encoded))


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
            address = checksum_address(account)
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
