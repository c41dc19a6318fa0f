"""A signed-in client of the control plane's API, for the subscriber's commands.

Usage (every command that needs the API, `nodus up` included):

    async with ApiSession.open(options.api_url, options.key_file) as api:
        me = await api.get("/v1/me/subscription")          # JSON, signed in as needed
        page = await api.get("/v1/configs", params={"limit": 50})
        created = await api.post("/v1/configs", {"node_id": ..., "protocol": "wireguard", ...})
        await api.delete(f"/v1/configs/{config_id}")
        nodes = await api.get("/v1/nodes", auth=False)     # public: no sign-in, no key needed
        api.address                                         # the wallet (checksummed)
        await api.login(force=True)                         # `nodus login`

- Sign-in is SIWE (EIP-4361): GET /v1/auth/nonce, sign the message with the wallet's key
  (EIP-191), POST /v1/auth/login. The message is written by `siwe_message` (the `siwe` library,
  which the API verifies with, loads web3 and compiles its grammar at import: over half a second
  of every sign-in for eight lines of text). It happens only when the cached token is missing,
  expires within `RENEW_MARGIN_S`, or the API answers 401 (then once more, and the request is
  retried once). The keystore is decrypted only then: a cached token needs no password.
- The token cache is `$XDG_CONFIG_HOME/nodus/tokens.json` (mode 0600; a cache readable by others
  is ignored), one token per (API URL, wallet).
- Failures are `CliError`s with the exit codes of support/exits.py: the API unreachable or
  answering 503 (it cannot reach the chain) -> `Unreachable` (4); 402 -> `PaymentNeeded` (3) whose
  next step is `nodus subscribe --months 1`; 404 -> `ApiNotFound` (1); other 4xx -> `CliError` (1)
  with the API's error code and message.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx

from nodus_cli.support.exits import CliError, PaymentNeeded, Unreachable
from nodus_cli.support.output import err_console
from nodus_cli.support.paths import TOKENS_NAME, config_dir, write_private
from nodus_cli.support.wallet import address_of_key, load_account

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

API_TIMEOUT_S: Final = 30.0
# A token this close to its expiry (at most a tenth of its lifetime) is renewed before use, so
# a request never races its expiry.
RENEW_MARGIN_S: Final = 30
SUBSCRIBE_NEXT_STEP: Final = "nodus subscribe --months 1"

JsonObject = dict[str, Any]


class ApiNotFound(CliError):
    """The API answered 404."""


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_at: float  # unix seconds
    renew_at: float  # unix seconds: after this, sign in again

    @classmethod
    def issued(cls, access_token: str, at: float, lifetime: float) -> Token:
        margin = min(RENEW_MARGIN_S, lifetime / 10)
        return cls(access_token, at + lifetime, at + lifetime - margin)

    def fresh(self, now: float) -> bool:
        return now < self.renew_at


class TokenCache:
    """tokens.json: {"<api url> <address lower>": {"access_token", "expires_at", "renew_at"}}."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
                return {}  # readable by others: not trusted, rewritten at the next sign-in
            parsed = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def get(self, key: str) -> Token | None:
        entry = self._load().get(key)
        if not isinstance(entry, dict):
            return None
        token, expires_at, renew_at = (
            entry.get("access_token"),
            entry.get("expires_at"),
            entry.get("renew_at"),
        )
        if not isinstance(token, str):
            return None
        if not isinstance(expires_at, (int, float)) or not isinstance(renew_at, (int, float)):
            return None
        return Token(token, float(expires_at), float(renew_at))

    def put(self, key: str, token: Token | None) -> None:
        entries = self._load()
        now = time.time()
        entries = {
            k: v
            for k, v in entries.items()
            if isinstance(v, dict) and isinstance(v.get("expires_at"), (int, float))
            and v["expires_at"] > now
        }  # fmt: skip
        if token is None:
            entries.pop(key, None)
        else:
            entries[key] = {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "renew_at": token.renew_at,
            }
        write_private(self.path, json.dumps(entries, indent=2))


def api_message(response: httpx.Response) -> str:
    """The API's error as `code: message` (its error shape), else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code")
            return f"{code}: {error['message']}" if code else str(error["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:200]


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def siwe_message(
    *,
    domain: str,
    address: str,
    statement: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: str,
) -> str:
    """The EIP-4361 message (version 1, no optional fields), as `siwe`'s `prepare_message`
    writes it (tests/cli/test_session.py compares the two)."""
    header = f"{domain} wants you to sign in with your Ethereum account:\n{address}\n"
    fields = f"URI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {issued_at}"
    return f"{header}\n{statement}\n\n{fields}" if statement else f"{header}\n\n{fields}"


class ApiSession:
    """One invocation's client of the API, signed in as the user's wallet when needed."""

    def __init__(
        self, api_url: str, key_file: Path | None, http: httpx.AsyncClient, cache: TokenCache
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.key_file = key_file
        self._http = http
        self._cache = cache
        self._address: ChecksumAddress | None = None
        self._account: LocalAccount | None = None

    @property
    def address(self) -> ChecksumAddress:
        """The wallet (read on first use: public routes need no key)."""
        if self._address is None:
            self._address = address_of_key(self.key_file)
        return self._address

    @property
    def _cache_key(self) -> str:
        return f"{self.api_url} {self.address.lower()}"

    @classmethod
    @asynccontextmanager
    async def open(
        cls, api_url: str, key_file: Path | None, *, http_timeout: float = API_TIMEOUT_S
    ) -> AsyncIterator[ApiSession]:
        async with httpx.AsyncClient(timeout=http_timeout) as http:
            yield cls(api_url, key_file, http, TokenCache(config_dir() / TOKENS_NAME))

    @property
    def account(self) -> LocalAccount:
        """The wallet's key (decrypts the keystore on first use)."""
        if self._account is None:
            self._account = load_account(self.key_file)
            if self._account.address != self.address:  # pragma: no cover - a swapped file
                raise CliError(f"the key file changed while running (now {self._account.address})")
        return self._account

    # --- sign-in ---------------------------------------------------------------------------

    async def login(self, *, force: bool = False) -> Token:
        """A usable token: the cached one unless `force` or (nearly) expired, else a new
        SIWE sign-in whose token is cached."""
        if not force:
            cached = self._cache.get(self._cache_key)
            if cached is not None and cached.fresh(time.time()):
                return cached
        from eth_account.messages import encode_defunct  # only for a sign-in

        account = self.account
        with err_console.status(f"signing in to {self.api_url} as {self.address}…"):
            nonce = _object(await self._send("GET", "/v1/auth/nonce", token=None), "nonce")
            message = siwe_message(
                domain=nonce["domain"],
                address=account.address,
                statement=nonce["statement"],
                uri=nonce["uri"],
                chain_id=int(nonce["chain_id"]),
                nonce=nonce["nonce"],
                issued_at=_iso(datetime.now(UTC)),
            )
            signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
            started = time.time()
            answer = _object(
                await self._send(
                    "POST",
                    "/v1/auth/login",
                    token=None,
                    body={"message": message, "signature": signature},
                ),
                "login",
            )
        token = Token.issued(str(answer["access_token"]), started, float(answer["expires_in"]))
        self._cache.put(self._cache_key, token)
        return token

    def forget(self) -> None:
        """Drops the cached token (the next request signs in again)."""
        self._cache.put(self._cache_key, None)

    # --- requests --------------------------------------------------------------------------

    async def get(
        self, path: str, *, params: dict[str, Any] | None = None, auth: bool = True
    ) -> JsonObject:
        return _object(await self.request("GET", path, params=params, auth=auth), path)

    async def post(self, path: str, body: JsonObject, *, auth: bool = True) -> JsonObject:
        return _object(await self.request("POST", path, body=body, auth=auth), path)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> JsonObject | None:
        """The JSON answer (None for 204); with `auth`, signed in, and once more after a 401
        (a token the server no longer accepts: new secret, revoked, clock skew)."""
        if not auth:
            return await self._send(method, path, token=None, params=params, body=body)
        token = await self.login()
        try:
            return await self._send(method, path, token=token, params=params, body=body)
        except _Unauthorized:
            token = await self.login(force=True)
            return await self._send(method, path, token=token, params=params, body=body)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: Token | None,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> JsonObject | None:
        url = self.api_url + path
        headers = {"authorization": f"Bearer {token.access_token}"} if token else {}
        try:
            response = await self._http.request(
                method, url, params=params, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"cannot reach the Nodus API at {self.api_url}: {str(exc) or type(exc).__name__}",
                "start the control plane, or point --api-url (NODUS_API_URL) at a reachable one",
            ) from None
        if response.is_success:
            if response.status_code == 204 or not response.content:
                return None
            try:
                answer = response.json()
            except ValueError:
                raise CliError(f"{method} {path}: the Nodus API's answer is not JSON") from None
            return _object(answer, path)
        raise self._error(method, path, response, token)

    def _error(
        self, method: str, path: str, response: httpx.Response, token: Token | None
    ) -> CliError:
        status, message = response.status_code, api_message(response)
        where = f"{method} {path}"
        if status == 401 and token is not None:
            return _Unauthorized(message)
        if status == 402:
            return PaymentNeeded(
                f"{self.address} has no active subscription ({message})", SUBSCRIBE_NEXT_STEP
            )
        if status == 503:
            retry = response.headers.get("retry-after")
            return Unreachable(
                f"the Nodus API cannot serve {where} now ({message})",
                f"retry in {retry} s" if retry else "retry shortly",
            )
        if status == 404:
            return ApiNotFound(f"{where}: not found ({message})")
        if status == 429:
            retry = response.headers.get("retry-after", "a few")
            return CliError(f"{where}: rate limited ({message})", next_step=f"retry in {retry} s")
        return CliError(f"the Nodus API answered {status} for {where}: {message}")


def _object(answer: object, path: str) -> JsonObject:
    if not isinstance(answer, dict):
        raise CliError(f"{path}: the Nodus API's answer is not a JSON object")
    return answer


class _Unauthorized(CliError):
    """A 401 on a token: renewed once by `request`."""
