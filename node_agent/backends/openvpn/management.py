"""The server's management socket: status, state and client-kill."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType
from typing import Self

from node_agent.backends.openvpn.status import StatusSnapshot, parse_status


class ManagementError(Exception):
    pass


class ManagementSession:
    """One connection to OpenVPN's management socket (it serves one client at a time: keep
    sessions short). Real-time notifications (`>...` lines) are skipped."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(str(self._path))
                greeting = await self._line()
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"management socket {self._path}: {exc!r}") from exc
        if not greeting.startswith(">INFO:"):
            raise ManagementError(f"management socket: unexpected greeting {greeting[:80]!r}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                self._writer.write(b"quit\n")
                await self._writer.drain()
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()

    async def _line(self) -> str:
        assert self._reader is not None
        raw = await self._reader.readline()
        if not raw:
            raise ManagementError("management socket closed")
        return raw.decode(errors="replace").rstrip("\r\n")

    async def _send(self, command: str) -> None:
        assert self._writer is not None
        if "\n" in command or "\r" in command:
            raise ValueError("one command, one line")
        self._writer.write(command.encode() + b"\n")
        await self._writer.drain()

    async def command(self, command: str) -> str:
        """A one-line command; its `SUCCESS:` text (ManagementError on `ERROR:`)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._send(command)
                while True:
                    line = await self._line()
                    if line.startswith("SUCCESS:"):
                        return line.removeprefix("SUCCESS:").strip()
                    if line.startswith("ERROR:"):
                        raise ManagementError(f"{command.split()[0]}: {line}")
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"{command.split()[0]}: {exc!r}") from exc

    async def status(self) -> StatusSnapshot:
        try:
            async with asyncio.timeout(self._timeout):
                await self._send("status 3")
                lines: list[str] = []
                while True:
                    line = await self._line()
                    if line.startswith(">"):
                        continue
                    if line.startswith("ERROR:"):
                        raise ManagementError(f"status: {line}")
                    lines.append(line)
                    if line == "END":
                        return parse_status("\n".join(lines))
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"status: {exc!r}") from exc

    async def state(self) -> str | None:
        """The server's state word from `state` (CONNECTED once it is initialized)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._send("state")
                found: str | None = None
                while True:
                    line = await self._line()
                    if line.startswith(">"):
                        continue
                    if line == "END" or line.startswith("ERROR:"):
                        return found
                    parts = line.split(",")
                    if found is None and len(parts) > 1 and parts[0].isdigit():
                        found = parts[1]
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"state: {exc!r}") from exc

    async def kill(self, client_id: int, message: str = "HALT") -> None:
        """`client-kill`: HALT makes the client exit; RESTART makes it reconnect."""
        await self.command(f"client-kill {int(client_id)} {message}")
