"""Revert reasons: a Nodus custom error decoded from the contracts' ABIs
(`WrongEpoch(epoch=5, expected=2)`), else web3's message."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from control_plane.chain.client import hex0x
from control_plane.chain.contracts import CONTRACT_NAMES, load_abi
from control_plane.paths import DEFAULT_ARTIFACTS_DIR

log = logging.getLogger("nodus.sender")


# Revert reasons


@cache
def revert_decoders(
    artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR,
) -> Mapping[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """selector -> (error name, argument names, argument types) of every Nodus custom error."""
    decoders: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
    for name in CONTRACT_NAMES:
        for entry in load_abi(name, artifacts_dir):
            if entry.get("type") != "error":
                continue
            types = tuple(_abi_type(i) for i in entry.get("inputs", []))
            names = tuple(str(i.get("name", "")) for i in entry.get("inputs", []))
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            decoders[selector] = (str(entry["name"]), names, types)
    return decoders


def _abi_type(entry: Mapping[str, Any]) -> str:
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def describe_revert(exc: ContractLogicError, artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR) -> str:
    """`WrongEpoch(epoch=5, expected=2)` for a Nodus custom error, else web3's message."""
    data = exc.data if isinstance(exc.data, str) else None
    if data and data.startswith("0x") and len(data) >= 10:
        raw = bytes.fromhex(data[2:])
        decoder = revert_decoders(artifacts_dir).get(raw[:4])
        if decoder is not None:
            name, names, types = decoder
            try:
                values = abi_decode(list(types), raw[4:])
            except Exception:
                return name
            args = ", ".join(f"{n}={_plain(v)}" for n, v in zip(names, values, strict=True))
            return f"{name}({args})"
    return str(exc.message or exc)


def _plain(value: object) -> str:
    return hex0x(value) if isinstance(value, bytes) else str(value)
