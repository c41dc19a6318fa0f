"""Exact parsing of what the user types: NDS amounts ("12.5" -> wei, with Decimal), addresses
(EIP-55 checksums checked when mixed-case), bytes32 values and calldata. Each raises
`typer.BadParameter`, a usage error (exit code 2) that names the bad value."""

from __future__ import annotations

import re
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Final

import typer

from nodus_cli.support.output import WEI_PER_NDS

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

UINT256_MAX: Final = 2**256 - 1

_AMOUNT = re.compile(r"\d+(\.\d+)?|\.\d+")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX = re.compile(r"0x([0-9a-fA-F]{2})*")


def parse_nds(text: str) -> int:
    """An NDS amount as the user writes it ("12", "12.5", "0.000000000000000001") -> wei,
    exactly: no float, no rounding; more than 18 decimals is an error, not a truncation."""
    value = text.strip().replace("_", "")
    if not _AMOUNT.fullmatch(value):
        raise typer.BadParameter(
            f"{text!r} is not an NDS amount: write a plain decimal number such as 12 or 12.5"
        )
    with localcontext() as ctx:
        ctx.prec = len(value) + 40
        ctx.traps[Inexact] = True
        try:
            wei = Decimal(value) * WEI_PER_NDS
        except (InvalidOperation, Inexact) as exc:  # pragma: no cover - the regex rules it out
            raise typer.BadParameter(f"{text!r} is not an NDS amount") from exc
    if wei != wei.to_integral_value():
        raise typer.BadParameter(f"{text!r} has more than 18 decimals (NDS has 18)")
    amount = int(wei)
    if amount > UINT256_MAX:
        raise typer.BadParameter(f"{text!r} NDS does not fit in a uint256")
    return amount


def parse_address(text: str) -> ChecksumAddress:
    """0x + 40 hex digits; a mixed-case address must carry a valid EIP-55 checksum."""
    from eth_utils.address import is_checksum_address, to_checksum_address

    value = text.strip()
    if not _ADDRESS.fullmatch(value):
        raise typer.BadParameter(
            f"{text!r} is not an address: expected 0x followed by 40 hex digits"
        )
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise typer.BadParameter(
            f"{text!r} has a wrong EIP-55 checksum (mixed case that does not match): a typo?"
        )
    return to_checksum_address(value)


def parse_bytes32(text: str) -> bytes:
    """0x + 64 hex digits -> 32 bytes."""
    value = text.strip()
    if not _BYTES32.fullmatch(value):
        raise typer.BadParameter(
            f"{text!r} is not a bytes32: expected 0x followed by 64 hex digits"
        )
    return bytes.fromhex(value[2:])


def parse_hex(text: str) -> bytes:
    """0x-prefixed hex with whole bytes (calldata)."""
    value = text.strip()
    if not _HEX.fullmatch(value):
        raise typer.BadParameter(f"{text!r} is not 0x-prefixed hex of whole bytes")
    return bytes.fromhex(value[2:])


def text_to_bytes32(text: str) -> bytes:
    """A short reason as Solidity's bytes32("...") holds it (UTF-8, zero-padded on the right);
    a value already written as 0x + 64 hex digits is taken as is."""
    if _BYTES32.fullmatch(text.strip()):
        return bytes.fromhex(text.strip()[2:])
    raw = text.encode()
    if len(raw) > 32:
        raise typer.BadParameter(
            f"the reason is {len(raw)} bytes; a bytes32 holds at most 32 (put details in the "
            "description)"
        )
    return raw.ljust(32, b"\x00")
