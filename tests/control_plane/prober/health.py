"""A real HTTP health endpoint, as the node agent serves it: an asyncio TCP server speaking
just enough HTTP/1.1 (keep-alive included). It signs its answers with the agent's own code
(node_agent.health.HealthProver) once told which node it serves (`serve_as`); until then it is a
plain server answering 200 without proof of service."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from eth_account.signers.local import LocalAccount

from node_agent.health import HealthProver


@dataclass
class HealthServer:
    port: int
    status: int = 200
    delay: float = 0.0
    requests: int = 0
    prover: HealthProver | None = None
    # Set when a request has arrived (a test can act while the server holds its answer).
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def serve_as(self, node_id: str, agent: LocalAccount) -> None:
        """Sign answers as `node_id`'s agent with `agent` (what the node agent does)."""
        self.prover = HealthProver(node_id, agent)

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
                self.arrived.set()
                if self.delay:
                    await asyncio.sleep(self.delay)
                answer: dict[str, Any] = {"status": "ok" if self.status == 200 else "down"}
                target = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "/"
                nonce = parse_qs(urlsplit(target).query).get("nonce", [None])[0]
                if self.prover is not None and nonce is not None:
                    answer["proof"] = self.prover.proof(nonce)
                body = json.dumps(answer).encode()
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
