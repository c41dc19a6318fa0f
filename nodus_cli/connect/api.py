"""The subscriber's side of the API, kept thin: SIWE sign-in (a token for this invocation),
the node list, config requests and the subscription. Unreachable is exit 4, unpaid exit 3.
(The cached, renewed session of `nodus login` replaces `sign_in` when it lands.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from siwe import SiweMessage

from nodus_cli.support.output import CliError, err_console

PAYMENT_NEEDED: Final = 3
UNREACHABLE: Final = 4
API_TIMEOUT_S: Final = 30.0


class PaymentNeeded(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=PAYMENT_NEEDED)


class Unreachable(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=UNREACHABLE)


def _message(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", response.text[:200]))
    except (ValueError, AttributeError):
        return "", response.text[:200]


@dataclass
class SubscriberApi:
    api_url: str
    http: httpx.AsyncClient
    token: str | None = None

    @classmethod
    def open(cls, api_url: str) -> SubscriberApi:
        return cls(api_url, httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=API_TIMEOUT_S))

    async def close(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.request(
                method, path, headers=headers, json=json, params=params
            )
        except httpx.TransportError as exc:
            raise Unreachable(
                f"cannot reach the Nodus API at {self.api_url}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code == 503:
            raise Unreachable(f"the Nodus API cannot reach the chain: {_message(response)[1]}")
        return response

    async def sign_in(self, account: LocalAccount) -> None:
        with err_console.status("signing in with your wallet (SIWE)…"):
            nonce = await self.request("GET", "/v1/auth/nonce")
            if not nonce.is_success:
                raise CliError(f"sign-in refused: {_message(nonce)[1]}")
            fields = nonce.json()
            issued = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            text = SiweMessage(
                domain=fields["domain"], address=account.address, statement=fields["statement"],
                uri=fields["uri"], version="1", chain_id=fields["chain_id"],
                nonce=fields["nonce"], issued_at=issued,
            ).prepare_message()  # fmt: skip
            signature = account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()
            login = await self.request(
                "POST", "/v1/auth/login", json={"message": text, "signature": signature}
            )
            if not login.is_success:
                raise CliError(f"sign-in refused: {_message(login)[1]}")
            self.token = str(login.json()["access_token"])

    async def subscription(self) -> dict[str, Any]:
        response = await self.request("GET", "/v1/me/subscription")
        if not response.is_success:
            raise CliError(f"cannot read your subscription: {_message(response)[1]}")
        body: dict[str, Any] = response.json()
        return body

    async def nodes(self, country: str | None, protocol: str) -> list[dict[str, Any]]:
        params: dict[str, str] = {"protocol": protocol, "sort": "score", "limit": "100"}
        if country:
            params["country"] = country
        response = await self.request("GET", "/v1/nodes", params=params)
        if not response.is_success:
            raise CliError(f"cannot list nodes: {_message(response)[1]}")
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def node(self, node_id: str) -> dict[str, Any]:
        response = await self.request("GET", f"/v1/nodes/{node_id}")
        if not response.is_success:
            raise CliError(f"node {node_id}: {_message(response)[1]}")
        body: dict[str, Any] = response.json()
        return body

    async def issue_config(self, body: dict[str, str]) -> dict[str, Any]:
        response = await self.request("POST", "/v1/configs", json=body)
        if response.status_code == 402:
            raise PaymentNeeded(f"the API says this wallet has not paid: {_message(response)[1]}")
        if not response.is_success:
            code, message = _message(response)
            raise CliError(
                f"the API refused the config ({code or response.status_code}): {message}"
            )
        issued: dict[str, Any] = response.json()
        return issued
