"""A stand-in for the control plane's agent API, served over real HTTP (uvicorn on a local
port, in the test's event loop), with the same contract: challenge + personal_sign login, bearer
tokens that expire, the long-polled peer set, the node's pools, heartbeats and metrics. Tests
script failures (status codes per route), hand out bad payloads, stop it and start it again on
the same port."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PEERS = "/v1/agent/peers"
CHALLENGE = "/v1/agent/challenge"
LOGIN = "/v1/agent/login"
HEARTBEAT = "/v1/agent/heartbeat"
METRICS = "/v1/agent/metrics"
POOLS = "/v1/agent/pools"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wg_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def wg_peer(host: int, *, expires_in: float = 3600, key: str | None = None) -> dict[str, Any]:
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    return {
        "protocol": "wireguard",
        "public_key": key or wg_key(),
        "allowed_ips": [f"10.8.{host // 256}.{host % 256}/32", f"fd00:8::{host:x}/128"],
        "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
    }


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "x", "message": message}}, status, headers=headers)


@dataclass
class FakeControlPlane:
    node_id: str
    agent_address: str
    port: int = field(default_factory=free_port)
    token_ttl: int = 900
    revision: int = 0
    peers: list[dict[str, Any]] = field(default_factory=list)
    # Status codes to answer, one per request, per route, before behaving normally.
    failures: dict[str, list[int]] = field(default_factory=dict)
    # A body the next peers poll answers as it is (to hand the agent a bad payload).
    raw_answers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # The W3C traceparent header of each request (None without one), in request order.
    traceparents: list[str | None] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    logins: int = 0
    # What GET /v1/agent/pools answers (a test may hand out something else).
    pools: dict[str, Any] = field(
        default_factory=lambda: {"ipv4_pool": "10.8.0.0/16", "ipv6_pool": "fd00:8::/112"}
    )
    tokens: dict[str, float] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _challenge: str | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_peers(self, peers: list[dict[str, Any]]) -> int:
        self.peers = peers
        self.revision += 1
        self._changed.set()
        self._changed = asyncio.Event()
        return self.revision

    def count(self, path: str) -> int:
        return sum(1 for _, p in self.requests if p == path)

    # --- the server ----------------------------------------------------------------------------

    async def start(self) -> None:
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._changed.set()  # release parked long-polls
        self._changed = asyncio.Event()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            self.requests.append((request.method, request.url.path))
            self.traceparents.append(request.headers.get("traceparent"))
            scripted = self.failures.get(request.url.path)
            if scripted:
                status = scripted.pop(0)
                return _error(status, f"scripted {status}", **{"retry-after": "0"})
            return await call_next(request)

        @app.post(CHALLENGE)
        async def challenge(request: Request) -> JSONResponse:
            body = await request.json()
            if body.get("node_id") != self.node_id:
                return _error(404, "no such node")
            self._challenge = (
                f"test asks the Nodus agent of node {self.node_id} to sign in.\n"
                f"Challenge: {secrets.token_hex(16)}"
            )
            return JSONResponse(
                {"node_id": self.node_id, "challenge": self._challenge, "expires_at": "x"}
            )

        @app.post(LOGIN)
        async def login(request: Request) -> JSONResponse:
            body = await request.json()
            challenge, self._challenge = self._challenge, None
            if challenge is None:
                return _error(401, "no open challenge")
            signer = Account.recover_message(
                encode_defunct(text=challenge), signature=body["signature"]
            )
            if signer != self.agent_address:
                return _error(401, "not the node's agent key")
            token = secrets.token_urlsafe(16)
            self.tokens[token] = time.monotonic() + self.token_ttl
            self.logins += 1
            return JSONResponse(
                {"access_token": token, "expires_in": self.token_ttl, "node_id": self.node_id}
            )

        def authorized(request: Request) -> bool:
            header = request.headers.get("authorization", "")
            expiry = self.tokens.get(header.removeprefix("Bearer "))
            return expiry is not None and time.monotonic() < expiry

        @app.get(PEERS)
        async def peers(request: Request) -> JSONResponse:
            if not authorized(request):
                return _error(401, "missing or invalid token")
            since_text = request.query_params.get("since")
            since = int(since_text) if since_text is not None else None
            wait = int(request.query_params.get("wait", "0"))
            self.polls.append({"since": since, "wait": wait})
            if self.raw_answers:
                return JSONResponse(self.raw_answers.pop(0))
            if since == self.revision and wait > 0:
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await changed.wait()
            if since == self.revision:
                return JSONResponse({"revision": since, "changed": False, "peers": None})
            return JSONResponse({"revision": self.revision, "changed": True, "peers": self.peers})

        @app.get(POOLS)
        async def pools(request: Request) -> JSONResponse:
            if not authorized(request):
                return _error(401, "missing or invalid token")
            return JSONResponse({"node_id": self.node_id, **self.pools})

        @app.post(HEARTBEAT)
        async def heartbeat(request: Request) -> JSONResponse:
            if not authorized(request):
                return _error(401, "missing or invalid token")
            self.heartbeats.append(await request.json())
            return JSONResponse({"revision": self.revision})

        @app.post(METRICS)
        async def metrics(request: Request) -> JSONResponse:
            if not authorized(request):
                return _error(401, "missing or invalid token")
            body = await request.json()
            self.metrics.append(body)
            return JSONResponse({"accepted": len(body["peers"]), "ignored": 0})

        return app
