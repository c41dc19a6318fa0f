"""Where the `nodus` commands write, how they fail, and how they show chain values.

Results go to stdout (`console`); progress, warnings and errors to stderr (`err_console`).
Expected failures raise `CliError` (support/exits.py: the exit codes), which `run` turns into a
red line with the cause, a line with the next step, and the exit code. Unexpected ones
propagate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Final

from rich.console import Console

from nodus_cli.support.exits import CliError, UsageError

__all__ = ["CliError", "UsageError"]  # re-exported: the commands import them from here

WEI_PER_NDS: Final = 10**18

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def format_nds(wei: int) -> str:
    """wei -> "12.5 NDS", exact, with thousands separators ("50,000,000 NDS")."""
    with localcontext() as ctx:
        ctx.prec = 100
        nds = (Decimal(wei) / WEI_PER_NDS).normalize()
    return f"{nds:,f} NDS"


def format_eth(wei: int) -> str:
    """wei -> "0.001 ETH", exact (ETH has 18 decimals, as NDS)."""
    return format_nds(wei).removesuffix(" NDS") + " ETH"


def bytes32_to_text(value: bytes) -> str:
    """The inverse of `text_to_bytes32` where the value is printable text, else hex."""
    stripped = value.rstrip(b"\x00")
    try:
        decoded = stripped.decode()
    except UnicodeDecodeError:
        return "0x" + value.hex()
    return decoded if decoded.isprintable() else "0x" + value.hex()


def hex0x(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def short_hex(value: bytes | str, keep: int = 6) -> str:
    text = value if isinstance(value, str) else hex0x(value)
    return text if len(text) <= 2 + 2 * keep else f"{text[: 2 + keep]}…{text[-keep:]}"


def format_time(timestamp: int, now: int | None = None) -> str:
    """A unix time as UTC, with how far it is from the chain's `now`."""
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if now is None:
        return when
    delta = timestamp - now
    if delta == 0:
        return f"{when} (now)"
    return (
        f"{when} ({'in ' if delta > 0 else ''}{duration(abs(delta))}{' ago' if delta < 0 else ''})"
    )


def duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            return f"{whole} {unit}" + (f" {duration(rest)}" if rest and unit != "min" else "")
    return f"{seconds} s"
