"""The indexer's word decoder agrees with eth_abi on every canonical encoding of the static
types the contracts' events use, and on anything else defers to eth_abi (dynamic types decode,
non-canonical words raise the same error)."""

from __future__ import annotations

import random

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError

from control_plane.indexer.abi_words import decode_words

STATIC_TYPES = [
    "address",
    "bool",
    "uint8",
    "uint64",
    "uint256",
    "int24",
    "int256",
    "bytes4",
    "bytes32",
]


def canonical(abi_type: str, rng: random.Random) -> object:
    if abi_type == "address":
        return "0x" + rng.randbytes(20).hex()
    if abi_type == "bool":
        return rng.random() < 0.5
    if abi_type.startswith("uint"):
        bits = int(abi_type[4:])
        return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits)])
    if abi_type.startswith("int"):
        bits = int(abi_type[3:])
        bound = 1 << (bits - 1)
        return rng.choice([0, -1, -bound, bound - 1, rng.randrange(-bound, bound)])
    return rng.randbytes(int(abi_type[5:]))


def eth_abi_view(types: list[str], data: bytes) -> list[object]:
    values = abi_decode(types, data)
    return [v.lower() if t == "address" else v for t, v in zip(types, values, strict=True)]


def test_canonical_words_decode_as_eth_abi_decodes_them() -> None:
    rng = random.Random(13)
    for _ in range(2_000):
        types = rng.sample(STATIC_TYPES, rng.randint(1, 4))
        data = abi_encode(types, [canonical(t, rng) for t in types])
        assert decode_words(types, data) == eth_abi_view(types, data)


def test_a_dynamic_type_is_decoded_by_eth_abi() -> None:
    types = ["address", "string", "uint256"]
    data = abi_encode(types, ["0x" + "ab" * 20, "nodus", 7])
    assert decode_words(types, data) == ["0x" + "ab" * 20, "nodus", 7]


@pytest.mark.parametrize(
    ("abi_type", "word"),
    [
        ("address", b"\x01" + bytes(31)),  # dirty padding above the 20 bytes
        ("bool", (2).to_bytes(32, "big")),
        ("uint8", (256).to_bytes(32, "big")),
        ("int24", (1 << 23).to_bytes(32, "big")),
        ("bytes4", b"\xff" * 5 + bytes(27)),
    ],
)
def test_a_word_its_type_never_encodes_to_raises_as_eth_abi_does(
    abi_type: str, word: bytes
) -> None:
    with pytest.raises(DecodingError) as expected:
        abi_decode([abi_type], word)
    with pytest.raises(type(expected.value)):
        decode_words([abi_type], word)
