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

from eth_typing import ChecksumAddress
from sha3 import keccak_256  # type: ignore[import-untyped]

# An epoch hashes every operator's leaf and checksums every address: done by hand here (the same
# bytes eth_abi and eth_utils produce, as the tests check) at a quarter of their per-call cost,
# with pysha3's keccak (a C extension: a seventh of pycryptodome's per-call cost in eth_hash).
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_WORD = 32
# EIP-55 as whole-string integer arithmetic: 0x20 under each hex letter of the address, and under
# each keccak nibble of 8 or more; where both are set, subtracting 0x20 upper-cases the letter.
_LETTERS = bytes(0x20 if chr(b) in "abcdef" else 0 for b in range(256))
_HIGH_NIBBLES = bytes(0x20 if chr(b) in "89abcdef" else 0 for b in range(256))


def keccak(data: bytes) -> bytes:
    return bytes(keccak_256(data).digest())


def _address_bytes(account: str) -> bytes:
    if not _ADDRESS.fullmatch(account):
        raise ValueError(f"not an address: {account!r}")
    return bytes.fromhex(account[2:])


def checksum_address(account: str) -> ChecksumAddress:
    """EIP-55: a hex letter is upper-cased where the keccak of the lower-case hex has a nibble
    of 8 or more."""
    return _checksum(_address_bytes(account))


def _checksum(raw: bytes) -> ChecksumAddress:
    lower = raw.hex().encode()
    nibbles = keccak(lower).hex()[:40].encode()
    letters = int.from_bytes(lower.translate(_LETTERS), "big")
    high = int.from_bytes(nibbles.translate(_HIGH_NIBBLES), "big")
    mixed = (int.from_bytes(lower, "big") - (letters & high)).to_bytes(40, "big")
    return cast(ChecksumAddress, "0x" + mixed.decode())


def leaf_hash(account: str, cumulative_amount: int) -> bytes:
    """The leaf of `(account, cumulative_amount)`, double-hashed against second preimages:
    `keccak256(keccak256(abi.encode(address, uint256)))`."""
    if not 0 <= cumulative_amount < 2**256:
        raise ValueError("amount out of uint256 range")
    return _leaf(_address_bytes(account), cumulative_amount)


def _leaf(raw: bytes, amount: int) -> bytes:
    return keccak(keccak(raw.rjust(_WORD, b"\0") + amount.to_bytes(_WORD, "big")))


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
        hashed: list[tuple[bytes, ChecksumAddress]] = []
        for account, amount in cumulative:
            raw = _address_bytes(account)
            address = _checksum(raw)
            if address in amounts:
                raise ValueError(f"duplicate account {address}")
            if not 0 <= amount < 2**256:
                raise ValueError(f"amount out of uint256 range for {address}")
            amounts[address] = amount
            hashed.append((_leaf(raw, amount), address))
        if not amounts:
            raise ValueError("a reward tree needs at least one leaf")

        hashed.sort(key=lambda x: x[0])
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
