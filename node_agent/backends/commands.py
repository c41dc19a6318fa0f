"""Runs the VPN tools (`wg`, ...) as child processes, optionally behind a command prefix such as
`ip netns exec <namespace>` (to manage an interface inside a network namespace)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class CommandError(RuntimeError):
    """A tool exited non-zero (or could not be started); the message carries its stderr."""


class CommandTimeout(CommandError):
    """A tool did not answer within the runner's timeout (it was killed)."""


class CommandRunner:
    def __init__(self, prefix: Sequence[str] = (), timeout: float = 120.0) -> None:
        self.prefix = tuple(prefix)
        self.timeout = timeout
        self.processes = 0  # how many processes were started (the benchmark and tests count)

    async def run(self, args: Sequence[str], stdin: bytes | None = None) -> str:
        """Runs `prefix + args`; its stdout. Raises CommandError on failure or timeout."""
        argv = (*self.prefix, *args)
        self.processes += 1
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise CommandError(f"{argv[0]}: cannot start ({exc.strerror})") from exc
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await process.communicate(stdin)
        except BaseException as exc:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if isinstance(exc, TimeoutError):
                raise CommandTimeout(f"{argv[0]}: no answer in {self.timeout:.0f}s") from exc
            raise
        if process.returncode != 0:
            shown = " ".join(argv[: len(self.prefix) + 3])
            message = err.decode(errors="replace").strip() or f"exit status {process.returncode}"
            raise CommandError(f"{shown} ...: {message}")
        return out.decode(errors="replace")
