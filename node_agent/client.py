"""The control plane's agent API over HTTP: sign-in by the node's on-chain agent key, the
long-polled desired peer set, heartbeats and metrics.

Every request has timeouts; network errors, 429 and 5xx are retried with full-jitter backoff
(honouring Retry-After, capped); a circuit breaker fails calls at once while the control plane is
down. The token is renewed before it expires and once on a 401. Only the HTTP contract is shared
with the control plane (this package never imports it)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from node_agent import __version__
from node_agent.config import ControlPlaneOptions
from node_agent.resilience import Backoff, CircuitBreaker

log = logging.getLogger("nodus.agent.client")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_METRICS_PER_REQUEST = 10_000  # the control plane's bound on one metrics report
MATERIAL_PATH = "/v1/agent/openvpn"
LOGIN_ATTEMPTS = 3  # a refused sign-in is tried again with a fresh challenge


# Stateless: writes the current span's `traceparent` into a request's headers.
TRACE_CONTEXT = TraceContextTextMapPropagator()


class ControlPlaneError(Exception):
    """A call to the control plane did not succeed."""


class Unavailable(ControlPlaneError):
    """The control plane could not be reached or kept failing (network, timeout, 429, 5xx, or
    the circuit breaker is open): retry later and keep serving the last known set."""


class Refused(ControlPlaneError):
    """The control plane answered with a 4xx it will answer again (bad credentials, node not
    Active on-chain, unknown node, invalid report): retrying the same call will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class _LoginRefused(Refused):
    """The signed login itself was refused (not the challenge): the node's open challenge is
    single-use, so another sign-in of this node may have just taken it; worth a fresh one."""


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if "detail" in body:
            return str(body["detail"])[:200]
    return str(body)[:200]


class ControlPlaneClient:
    def __init__(
        self,
        options: ControlPlaneOptions,
        node_id: str,
        account: LocalAccount,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tracer: Tracer | None = None,
    ) -> None:
        self.options = options
        # A client span per request, its W3C traceparent sent along (no-op while tracing is off).
        self._tracer = tracer or NoOpTracer()
        self.node_id = node_id
        self.account = account
        self.backoff = backoff or Backoff(options.backoff_base_seconds, options.backoff_cap_seconds)
        self.breaker = breaker or CircuitBreaker(
            options.breaker_failures, options.breaker_reset_seconds
        )
        self._clock = clock
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=options.url,
            timeout=httpx.Timeout(options.request_timeout_seconds),
            transport=transport,
            headers={"user-agent": f"nodus-agent/{__version__}"},
            follow_redirects=False,
        )
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._login_lock = asyncio.Lock()
        self.logins = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ControlPlaneClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the agent API -------------------------------------------------------------------------

    async def poll_peers(
        self, since: int | None, wait: int, *, diff: bool = False, history: str | None = None
    ) -> dict[str, Any]:
        """GET /v1/agent/peers: the desired set (or `changed: false`), waiting up to `wait`
        seconds for a change after `since`. With `diff`, answers carry the node's history, and
        with `history` (the one our set at `since` is from) they may be a diff against that set.
        Returns the JSON body as it came (the caller validates it before trusting any of it)."""
        params: dict[str, int | str] = {"wait": wait}
        if since is not None:
            params["since"] = since
        if diff:
            params["diff"] = "true"
            if history is not None and since is not None:
                params["history"] = history
        timeout = httpx.Timeout(
            self.options.request_timeout_seconds,
            read=wait + self.options.request_timeout_seconds,
        )
        response = await self._request("GET", "/v1/agent/peers", params=params, timeouts=timeout)
        return self._json_object(response)

    async def pools(self) -> dict[str, Any]:
        """GET /v1/agent/pools: the node's device pools (the caller validates them)."""
        return self._json_object(await self._request("GET", "/v1/agent/pools"))

    async def request_probe(self) -> tuple[int, dict[str, Any], float | None]:
        """POST /v1/nodes/{id}/probe once (no retry: it is rate limited, and `selftest` shows
        a 429's Retry-After rather than waiting): status, JSON body ({} if none), Retry-After."""
        token = await self._bearer()
        response = await self._http.post(
            f"/v1/nodes/{self.node_id}/probe", headers={"authorization": f"Bearer {token}"}
        )
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}, _retry_after(response)

    async def heartbeat(self, report: Mapping[str, Any]) -> dict[str, Any]:
        response = await self._request("POST", "/v1/agent/heartbeat", json=dict(report))
        return self._json_object(response)

    async def metrics(self, peers: list[dict[str, Any]]) -> int:
        """POST /v1/agent/metrics in chunks of at most 10,000 peers; rows accepted."""
        accepted = 0
        for start in range(0, len(peers), MAX_METRICS_PER_REQUEST):
            chunk = peers[start : start + MAX_METRICS_PER_REQUEST]
            response = await self._request("POST", "/v1/agent/metrics", json={"peers": chunk})
            accepted += int(self._json_object(response).get("accepted", 0))
        return accepted

    async def openvpn_material(self) -> object:
        """GET /v1/agent/openvpn: the node's OpenVPN material, the JSON as it came (the OpenVPN
        backend checks it before using any of it)."""
        response = await self._request("GET", MATERIAL_PATH)
        try:
            return response.json()
        except ValueError as exc:
            raise Unavailable(f"{MATERIAL_PATH}: the answer is not JSON") from exc

    async def login(self) -> None:
        """Signs the node's challenge with the agent key and keeps the node-scoped token."""
        async with self._login_lock:
            await self._login()

    # --- internals -----------------------------------------------------------------------------

    async def _login(self) -> None:
        """Signs in; a refused login is tried again twice with a fresh challenge (the node's
        open challenge is single-use: another sign-in of this node may have just taken it)."""
        for attempt in range(LOGIN_ATTEMPTS):
            try:
                await self._login_once()
                return
            except _LoginRefused:
                if attempt + 1 == LOGIN_ATTEMPTS:
                    raise
                await self._sleep(random.uniform(0.2, 1.0))  # noqa: S311 (jitter)

    async def _login_once(self) -> None:
        challenge = self._json_object(
            await self._request(
                "POST", "/v1/agent/challenge", json={"node_id": self.node_id}, auth=False
            )
        )
        text = challenge.get("challenge")
        if not isinstance(text, str) or self.node_id not in text:
            raise Refused(200, "the challenge does not name this node; refusing to sign it")
        signature = self.account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()
        try:
            body = self._json_object(
                await self._request(
                    "POST",
                    "/v1/agent/login",
                    json={"node_id": self.node_id, "signature": signature},
                    auth=False,
                )
            )
        except Refused as exc:
            raise _LoginRefused(exc.status, exc.message) from exc
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(expires_in, int) or expires_in <= 0:
            raise _LoginRefused(200, "the login answer has no usable token")
        self._token = token
        # Renew a fifth of the lifetime before expiry (at most a minute): never on the edge.
        self._token_renew_at = self._clock() + expires_in - min(60.0, expires_in / 5)
        self.logins += 1
        log.info("signed in to the control plane", extra={"expires_in": expires_in})

    async def _bearer(self, *, force: bool = False) -> str:
        async with self._login_lock:
            if force or self._token is None or self._clock() >= self._token_renew_at:
                self._token = None
                await self._login()
            assert self._token is not None
            return self._token

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, int | str] | None = None,
        json: object = None,
        timeouts: httpx.Timeout | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        attempts = self.options.retry_attempts
        relogged = False
        last: str = "no attempt"
        attempt = 0
        while attempt < attempts:
            headers = {}
            if auth:
                headers["authorization"] = f"Bearer {await self._bearer()}"
            if not self.breaker.allow():
                raise Unavailable(
                    f"circuit open after {self.breaker.consecutive_failures} failures "
                    f"({last}); next trial in {self.breaker.retry_after():.0f}s"
                )
            retry_after: float | None = None
            try:
                with self._tracer.start_as_current_span(f"{method} {path}", kind=SpanKind.CLIENT):
                    TRACE_CONTEXT.inject(headers)
                    response = await self._http.request(
                        method,
                        path,
                        params=params,
                        json=json,
                        headers=headers,
                        timeout=timeouts if timeouts is not None else httpx.USE_CLIENT_DEFAULT,
                    )
            except httpx.TransportError as exc:
                self.breaker.record_failure()
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except BaseException:
                self.breaker.release()
                raise
            else:
                if response.status_code == 401 and auth and not relogged:
                    self.breaker.record_success()  # it answered; our token is what failed
                    relogged = True
                    self._token = None
                    continue  # sign in again and repeat, without counting an attempt
                if response.status_code in RETRYABLE_STATUS:
                    if response.status_code == 429:
                        self.breaker.record_success()  # busy, not down
                    else:
                        self.breaker.record_failure()
                    last = f"HTTP {response.status_code}: {_error_message(response)}"
                    retry_after = _retry_after(response)
                else:
                    self.breaker.record_success()
                    if response.status_code >= 400:
                        raise Refused(response.status_code, _error_message(response))
                    return response
            attempt += 1
            if attempt < attempts:
                delay = self.backoff.delay(attempt - 1)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self.backoff.cap))
                log.debug("retrying %s %s in %.2fs (%s)", method, path, delay, last)
                await self._sleep(delay)
        raise Unavailable(f"{method} {path} failed {attempts} times; last: {last}")

    @staticmethod
    def _json_object(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise Unavailable(f"{response.request.url.path}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise Unavailable(f"{response.request.url.path}: the answer is not a JSON object")
        return body


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
