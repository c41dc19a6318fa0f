"""Running the host's network tools without blocking the event loop, and the failures they
turn into (exit code 5: the tunnel failed)."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from typing import Final

from nodus_cli.support.exits import TunnelFailed

COMMAND_TIMEOUT_S: Final = 30.0


class TunnelError(TunnelFailed):
    """The tunnel could not be brought up, proven or taken down (exit code 5)."""


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def is_root() -> bool:
    return os.geteuid() == 0


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise TunnelError(
            f"missing {', '.join(missing)}: install them (Debian/Ubuntu: apt-get install "
            "iproute2 wireguard-tools nftables openvpn; wireguard-go where the kernel has no "
            "WireGuard module)"
        )


async def run(*args: str, check: bool = True, stdin: str | None = None) -> Result:
    """Runs one command; with `check`, a failure is a TunnelError naming the command."""
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise TunnelError(f"{args[0]} is not installed") from None
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise TunnelError(f"{' '.join(args)} did not finish in {COMMAND_TIMEOUT_S:.0f} s") from None
    result = Result(
        process.returncode or 0, out.decode(errors="replace"), err.decode("utf-8", "replace")
    )
    if check and not result.ok:
        raise TunnelError(f"{' '.join(args)} failed: {result.stderr.strip() or result.returncode}")
    return result
