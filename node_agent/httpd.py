"""The agent's two tiny HTTP servers (health for the probers, metrics for the operator's
scraper) share this: asyncio.start_server, one request per connection, the request line and
headers read within a few seconds, bodies never read, and the connection closed after the answer.
A slow or silent client is cut; nothing else is served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

log = logging.getLogger("nodus.agent.http")

READ_TIMEOUT_SECONDS = 5.0
MAX_HEADER_LINES = 100


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query, as sent
    client: str  # the peer's address ("" if unknown)
    well_formed: bool  # a request line of three parts, `HTTP/` last

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes


Handler = Callable[[Request], Response | Awaitable[Response]]


class ListenFailed(Exception):
    """The address cannot be bound (in use, not this host's, no permission): `run` says which."""


async def _read_request(reader: asyncio.StreamReader, client: str) -> Request:
    async with asyncio.timeout(READ_TIMEOUT_SECONDS):
        request_line = await reader.readline()
        for _ in range(MAX_HEADER_LINES):
            if (await reader.readline()) in (b"\r\n", b"\n", b""):
                break
    parts = request_line.decode("latin-1").split()
    if len(parts) == 3 and parts[2].startswith("HTTP/"):
        return Request(parts[0], parts[1], client, True)
    return Request(parts[0] if parts else "", "", client, False)


def _encode(response: Response, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + response.body


async def start_http_server(host: str, port: int, handler: Handler, what: str) -> asyncio.Server:
    """Serves `handler` on host:port ("" host: every address of both families). A HEAD gets
    the GET's head without the body."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            request = await _read_request(reader, client)
            answer = handler(request)
            response = answer if isinstance(answer, Response) else await answer
            writer.write(_encode(response, head_only=request.method == "HEAD"))
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError, ValueError):
            pass
        except Exception:
            log.exception("%s endpoint failed", what)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    try:
        return await asyncio.start_server(handle, host, port)
    except OSError as exc:
        shown = f"[{host}]" if ":" in host else host or "*"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text is long
        raise ListenFailed(
            f"the {what} endpoint cannot listen on {shown}:{port}: {reason}"
        ) from exc
