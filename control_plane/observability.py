"""Request ids, the request log context and the Prometheus metrics of every HTTP request, as a
pure ASGI middleware: no `BaseHTTPMiddleware`, whose extra task and stream per request cost more
than the cheapest routes themselves (the agent's unchanged poll)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.error_handlers import unexpected_error_response
from control_plane.logging_setup import request_id_var

MAX_REQUEST_ID = 64


def _request_id(scope: Scope) -> str:
    """The client's X-Request-Id if it is short and plain (letters, digits, dashes), else a
    fresh one: the id goes into logs and a response header."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            if 0 < len(given) <= MAX_REQUEST_ID and given.replace("-", "").isalnum():
                return given
            break
    return uuid.uuid4().hex


class ObservabilityMiddleware:
    """Sets the request id (request.state.request_id, the log context, the response's
    X-Request-Id), counts and times each request by method, route template and status, and
    answers an exception no handler claimed (503 for an unavailable database, else 500), logged
    once: Starlette's catch-all handler would answer and re-raise, and the server would log the
    traceback a second time."""

    def __init__(
        self,
        app: ASGIApp,
        registry: CollectorRegistry,
        route_templates: Mapping[int, str],
    ) -> None:
        self.app = app
        # By id() of the route (routes compare by value and are not hashable): its full
        # template, where its own path lacks the prefix it was included under.
        self.route_templates = route_templates
        self.requests = Counter(
            "nodus_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "nodus_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # what the client gets if the app raises before it answers
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # Logged by unexpected_error_response; nothing is re-raised. Once the response
                # has started, the client only sees the connection end.
                response = unexpected_error_response(Request(scope), exc)
                if not started_response:
                    await response(scope, receive, send_with_id)
        finally:
            route: Any = scope.get("route")
            path = self.route_templates.get(id(route)) or getattr(route, "path", "unmatched")
            method = scope["method"]
            self.latency.labels(method, path).observe(time.perf_counter() - started)
            self.requests.labels(method, path, str(status)).inc()
            request_id_var.reset(token)
