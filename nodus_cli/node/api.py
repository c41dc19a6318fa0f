"""The control plane as the node commands use it: GET/POST/PATCH with the API's own error
messages, and a thin Sign-In with Ethereum (GET /v1/auth/nonce, POST /v1/auth/login) that gives
the operator wallet a bearer token for this invocation only.

The subscriber CLI's session layer (a cached token per account) supersedes `sign_in` once it is
merged; until then this is the whole of it: one nonce, one signed message, one token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from siwe import SiweMessage

from nodus_cli.support.output import CliError

API_TIMEOUT_S: Final = 30.0

JsonObject = dict[str, Any]


class ApiError(CliError):
    """The API answered with an error: its status, its error code and its message."""

    def __init__(self, status: int, code: str, message: str, url: str) -> None:
        super().__init__(f"the Nodus API answered {status} ({code}) for {url}: {message}")
        self.status = status
        self.code = code
        self.api_message = message


@dataclass(slots=True)
class NodusApi:
    """One control plane (`base_url`), optionally signed in as one wallet."""

    base_url: str
    token: str | None = None
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    async def __aenter__(self) -> NodusApi:
        self._client = httpx.AsyncClient(timeout=API_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def request(self, method: str, path: str, body: object = None) -> JsonObject:
        """The JSON object `method path` answers ({} for no body); errors become ApiError (the
        API said no) or CliError (unreachable, or not a JSON object)."""
        assert self._client is not None, "use NodusApi as an async context manager"
        url = self.base_url.rstrip("/") + path
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self._client.request(
                method, url, json=body, headers=headers if headers else None
            )
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the Nodus API at {self.base_url}: {exc or type(exc).__name__}"
            ) from None
        if response.is_success:
            if not response.content:
                return {}
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise CliError(f"the Nodus API's answer for {url} is not a JSON object")
            return answer
        code, message = _error_of(response)
        raise ApiError(response.status_code, code, message, url)

    async def get_bytes(self, path: str) -> bytes | None:
        """The exact body of GET `path` (for content hashed as is); None on a 404."""
        assert self._client is not None, "use NodusApi as an async context manager"
        url = self.base_url.rstrip("/") + path
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the Nodus API at {self.base_url}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code == 404:
            return None
        if not response.is_success:
            code, message = _error_of(response)
            raise ApiError(response.status_code, code, message, url)
        return response.content

    async def get(self, path: str) -> JsonObject:
        return await self.request("GET", path)

    async def get_or_none(self, path: str) -> JsonObject | None:
        """GET, with a 404 as None."""
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def sign_in(self, account: LocalAccount) -> None:
        """Sign-In with Ethereum as `account`: the token is kept for this object's requests."""
        nonce = await self.get("/v1/auth/nonce")
        try:
            message = SiweMessage(
                domain=nonce["domain"],
                address=account.address,
                statement=nonce["statement"],
                uri=nonce["uri"],
                version="1",
                chain_id=nonce["chain_id"],
                nonce=nonce["nonce"],
                issued_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            ).prepare_message()
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError(f"the Nodus API's sign-in nonce is malformed: {exc}") from None
        signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        answer = await self.request(
            "POST", "/v1/auth/login", {"message": message, "signature": signature}
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise CliError("the Nodus API's sign-in answer has no access_token")
        self.token = answer["access_token"]


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "http_error", (response.text[:200] or response.reason_phrase)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code", "error")), str(error.get("message", ""))[:500]
        if body.get("detail"):
            return "error", str(body["detail"])[:500]
    return "error", str(body)[:200]
