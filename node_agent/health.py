"""A tiny HTTP server for the control plane's prober: `GET /health` answers
`{"status", "revision", "peers"}` (200 while the node serves its peers, 503 otherwise).

asyncio.start_server and one request per connection: nothing else is served, bodies are never
read, and a slow or silent client is cut after a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

log = logging.getLogger("nodus.agent.health")

Snapshot = Callable[[], tuple[int, dict[str, Any]]]
READ_TIMEOUT_SECONDS = 5.0
MAX_HEADER_LINES = 100


async def start_health_server(host: str, port: int, snapshot: Snapshot) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                request_line = await reader.readline()
                for _ in range(MAX_HEADER_LINES):
                    if (await reader.readline()) in (b"\r\n", b"\n", b""):
                        break
            parts = request_line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                status, body = 400, {"error": "bad request"}
            elif parts[1].split("?", 1)[0] != "/health":
                status, body = 404, {"error": "not found"}
            elif parts[0] not in ("GET", "HEAD"):
                status, body = 405, {"error": "method not allowed"}
            else:
                status, body = snapshot()
            payload = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(head if parts and parts[0] == "HEAD" else head + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError, ValueError):
            pass
        except Exception:
            log.exception("health endpoint failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    log.info("health endpoint on http://%s:%d/health", host, port)
    return server
