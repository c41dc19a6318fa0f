"""Revert reasons: Nodus custom errors decoded from revert data with the contracts' ABIs.

One decoder for everyone who shows a revert to a person: the oracle's transaction sender (in its
outbox errors) and the `nodus` CLI (in its messages). Each formats the decoded error its own way;
the selector table, the ABI type strings and the decoding live here once.

The table is read from the Foundry artifacts the first time it is needed and kept by the
`RevertDecoder` object (the sender holds one, a CLI invocation holds one), not by the module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from control_plane.chain.client import hex0x
from control_plane.chain.contracts import CONTRACT_NAMES, DeploymentError, load_abi
from control_plane.paths import DEFAULT_ARTIFACTS_DIR


def abi_type(entry: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI input (`(uint256,address)[]` for a tuple array), as
    selectors and `eth_abi` take it."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in entry.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@dataclass(frozen=True, slots=True)
class ErrorAbi:
    """One custom error: its name and its arguments' names and types."""

    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DecodedError:
    """A custom error found by its selector; `values` is None when its arguments did not
    decode (then `raw_args` holds them)."""

    abi: ErrorAbi
    values: tuple[Any, ...] | None
    raw_args: bytes

    @property
    def name(self) -> str:
        return self.abi.name


def revert_bytes(data: str | bytes) -> bytes:
    """Revert data as bytes (`0x…` text or bytes)."""
    if isinstance(data, bytes):
        return data
    return bytes.fromhex(data[2:] if data[:2] == "0x" else data)


class RevertDecoder:
    """selector -> custom error of every Nodus contract (OpenZeppelin's errors included)."""

    def __init__(
        self, artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR, *, missing_ok: bool = False
    ) -> None:
        self.artifacts_dir = artifacts_dir
        # A build without some artifact: the CLI still decodes what it can, the sender refuses.
        self.missing_ok = missing_ok
        self._errors: dict[bytes, ErrorAbi] | None = None

    @property
    def errors(self) -> Mapping[bytes, ErrorAbi]:
        if self._errors is None:
            self._errors = self._load()
        return self._errors

    def _load(self) -> dict[bytes, ErrorAbi]:
        errors: dict[bytes, ErrorAbi] = {}
        for name in CONTRACT_NAMES:
            try:
                abi = load_abi(name, self.artifacts_dir)
            except DeploymentError:
                if self.missing_ok:
                    continue
                raise
            for entry in abi:
                if entry.get("type") != "error":
                    continue
                inputs: Sequence[Mapping[str, Any]] = entry.get("inputs", [])
                types = tuple(abi_type(i) for i in inputs)
                names = tuple(str(i.get("name", "")) for i in inputs)
                selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
                errors[selector] = ErrorAbi(str(entry["name"]), names, types)
        return errors

    def decode(self, data: str | bytes) -> DecodedError | None:
        """The custom error in `data` (`0x<selector><args>`), or None if no Nodus ABI has it."""
        raw = revert_bytes(data)
        found = self.errors.get(raw[:4]) if len(raw) >= 4 else None
        if found is None:
            return None
        try:
            values = tuple(abi_decode(list(found.types), raw[4:]))
        except DecodingError:
            return DecodedError(found, None, raw[4:])
        return DecodedError(found, values, raw[4:])


def describe_revert(exc: ContractLogicError, decoder: RevertDecoder) -> str:
    """The sender's wording: `WrongEpoch(epoch=5, expected=2)` for a Nodus custom error (its
    name alone if the arguments do not decode), else web3's message."""
    data = exc.data if isinstance(exc.data, str) else None
    if data and data.startswith("0x") and len(data) >= 10:
        decoded = decoder.decode(data)
        if decoded is not None:
            if decoded.values is None:
                return decoded.name
            args = ", ".join(
                f"{n}={_plain(v)}" for n, v in zip(decoded.abi.names, decoded.values, strict=True)
            )
            return f"{decoded.name}({args})"
    return str(exc.message or exc)


def _plain(value: object) -> str:
    return hex0x(value) if isinstance(value, bytes) else str(value)
