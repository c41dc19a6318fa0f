"""A real HTTP health endpoint, as the node agent serves it: an asyncio TCP server speaking
just enough HTTP/1.1 (keep-alive included)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class HealthServer:
    port: int
    status: int = 200
    delay: float = 0.0
    requests: int = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                body = b'{"status":"ok"}' if self.status == 200 else b'{"status":"down"}'
                reason = "OK" if self.status == 200 else "Service Unavailable"
                writer.write(
                    f"HTTP/1.1 {self.status} {reason}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                if b"connection: close" in head.lower():
                    return
        finally:
            writer.close()


@asynccontextmanager
async def health_server(status: int = 200, delay: float = 0.0) -> AsyncIterator[HealthServer]:
    state = HealthServer(port=0, status=status, delay=delay)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
