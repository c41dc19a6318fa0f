"""Sign-In with Ethereum: real messages signed by real keys, checked by the real app."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi import FastAPI
from sqlalchemy import func, select, update

from control_plane.auth.models import AuthNonce
from control_plane.db import unit_of_work
from tests.control_plane.auth.conftest import (
    ADMIN,
    add_chain_node,
    bearer,
    get_nonce,
    iso,
    login,
    personal_sign,
    siwe_message,
)


def assert_unauthorized(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    for word in words:
        assert word in error["message"]


async def test_nonce_gives_what_a_wallet_needs(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    body = await get_nonce(client)

    assert set(body) == {"nonce", "domain", "uri", "chain_id", "statement", "expires_at"}
    assert body["domain"] == "testserver"
    assert body["uri"] == "http://testserver"
    assert body["chain_id"] == 31337
    assert body["statement"] == "Sign in to Nodus."
    # EIP-4361's alphabet; hex carries 4 bits a character, so >= 24 characters is >= 96 bits.
    assert re.fullmatch(r"[0-9a-f]{24,64}", body["nonce"])
    ttl = datetime.fromisoformat(body["expires_at"]) - before
    assert timedelta(minutes=4, seconds=55) < ttl <= timedelta(minutes=5, seconds=5)
    assert (await get_nonce(client))["nonce"] != body["nonce"]


async def test_login_returns_a_token_that_authenticates(client: httpx.AsyncClient) -> None:
    wallet = Account.create()

    response = await login(client, wallet)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["address"] == wallet.address.lower()
    assert body["roles"] == ["subscriber"]
    me = await client.get(
        "/v1/auth/me", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == {
        "subject": wallet.address.lower(),
        "roles": ["subscriber"],
        "node_id": None,
    }


async def test_operator_role_follows_the_indexed_active_node(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    operator, exited = Account.create(), Account.create()
    await add_chain_node(app, operator.address, active=True)
    await add_chain_node(app, exited.address, active=False)

    assert (await login(client, operator)).json()["roles"] == ["operator", "subscriber"]
    assert (await login(client, exited)).json()["roles"] == ["subscriber"]


async def test_configured_address_is_admin(client: httpx.AsyncClient) -> None:
    me = await client.get("/v1/auth/me", headers=await bearer(client, ADMIN))
    assert me.json()["roles"] == ["admin", "subscriber"]


async def test_replayed_login_is_refused(client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    message = siwe_message(wallet, await get_nonce(client))
    body = {"message": message, "signature": personal_sign(wallet, message)}
    assert (await client.post("/v1/auth/login", json=body)).status_code == 200

    assert_unauthorized(await client.post("/v1/auth/login", json=body), "nonce")


async def test_concurrent_logins_with_one_nonce_succeed_once(client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    message = siwe_message(wallet, await get_nonce(client))
    body = {"message": message, "signature": personal_sign(wallet, message)}

    responses = await asyncio.gather(*(client.post("/v1/auth/login", json=body) for _ in range(8)))

    assert sorted(r.status_code for r in responses) == [200] + [401] * 7


async def test_unknown_nonce_is_refused(client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    nonce = {**(await get_nonce(client)), "nonce": "a" * 32}
    message = siwe_message(wallet, nonce)
    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(wallet, message)}
    )
    assert_unauthorized(response, "nonce")


async def test_expired_nonce_is_refused_and_purged(app: FastAPI, client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    nonce = await get_nonce(client)
    message = siwe_message(wallet, nonce)
    async with unit_of_work(app.state.sessions) as session:
        await session.execute(
            update(AuthNonce)
            .where(AuthNonce.nonce == nonce["nonce"])
            .values(expires_at=func.now() - timedelta(seconds=1))
        )

    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(wallet, message)}
    )
    assert_unauthorized(response, "nonce")

    await get_nonce(client)  # issuing purges expired nonces on the way
    async with unit_of_work(app.state.sessions) as session:
        left = await session.scalar(
            select(func.count()).select_from(AuthNonce).where(AuthNonce.nonce == nonce["nonce"])
        )
    assert left == 0


def _in(delta: timedelta) -> str:
    return iso(datetime.now(UTC) + delta)


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        pytest.param({"domain": "evil.example"}, "domain", id="wrong-domain"),
        pytest.param({"uri": "https://evil.example"}, "URI", id="wrong-uri"),
        pytest.param({"chain_id": 1}, "chain ID", id="wrong-chain-id"),
        pytest.param({"scheme": "ftp"}, "scheme", id="wrong-scheme"),
        pytest.param(
            {"expiration_time": _in(timedelta(seconds=-5))}, "expired", id="expired-message"
        ),
        pytest.param({"issued_at": _in(timedelta(hours=1))}, "future", id="issued-in-future"),
        pytest.param({"issued_at": _in(timedelta(minutes=-10))}, "ago", id="issued-too-long-ago"),
        pytest.param({"not_before": _in(timedelta(hours=1))}, "not valid yet", id="not-before"),
    ],
)
async def test_message_for_another_audience_or_time_is_refused(
    client: httpx.AsyncClient, fields: dict[str, Any], hint: str
) -> None:
    assert_unauthorized(await login(client, Account.create(), **fields), hint)


async def test_optional_fields_within_bounds_are_accepted(client: httpx.AsyncClient) -> None:
    response = await login(
        client,
        Account.create(),
        scheme="http",
        expiration_time=_in(timedelta(minutes=5)),
        not_before=_in(timedelta(minutes=-1)),
        request_id="cli-1",
        resources=["https://testserver/v1/configs"],
    )
    assert response.status_code == 200, response.text


async def test_a_refused_login_does_not_use_up_the_nonce(client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    message = siwe_message(wallet, await get_nonce(client))
    stranger = Account.create()
    refused = await client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(stranger, message)}
    )
    assert_unauthorized(refused, "signature")

    accepted = await client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(wallet, message)}
    )
    assert accepted.status_code == 200


def _tamper(signature: str) -> str:
    flipped = "1" if signature[10] != "1" else "2"
    return signature[:10] + flipped + signature[11:]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda wallet, other, message: _tamper(personal_sign(wallet, message)), id="tampered"
        ),
        pytest.param(
            lambda wallet, other, message: personal_sign(other, message), id="another-key"
        ),
        pytest.param(lambda wallet, other, message: "0x" + "00" * 65, id="zeros"),
        pytest.param(lambda wallet, other, message: "0x" + "ff" * 65, id="out-of-range"),
        pytest.param(lambda wallet, other, message: "0x" + "11" * 64 + "05", id="bad-v"),
        pytest.param(
            lambda wallet, other, message: personal_sign(wallet, message + " "), id="other-text"
        ),
    ],
)
async def test_bad_signature_is_refused(client: httpx.AsyncClient, forge: Any) -> None:
    wallet, other = Account.create(), Account.create()
    message = siwe_message(wallet, await get_nonce(client))
    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": forge(wallet, other, message)}
    )
    assert_unauthorized(response, "signature")


async def test_message_not_exactly_as_rendered_is_refused(client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    message = siwe_message(wallet, await get_nonce(client)) + "\n"
    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(wallet, message)}
    )
    assert_unauthorized(response, "layout")


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("hello", id="not-siwe"),
        pytest.param(
            "x wants you to sign in with your Ethereum account:\n" + "a" * 1900, id="long"
        ),
    ],
)
async def test_unparseable_message_is_refused(client: httpx.AsyncClient, message: str) -> None:
    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": "0x" + "1b" * 65}
    )
    assert_unauthorized(response, "EIP-4361")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param({"message": "m"}, id="no-signature"),
        pytest.param({"message": "m", "signature": "0x1234"}, id="short-signature"),
        pytest.param({"message": "m" * 2049, "signature": "0x" + "1b" * 65}, id="huge-message"),
        pytest.param({"message": 1, "signature": "0x" + "1b" * 65}, id="not-a-string"),
        pytest.param(
            {"message": "m", "signature": "0x" + "1b" * 65, "extra": 1}, id="unknown-field"
        ),
    ],
)
async def test_malformed_body_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/v1/auth/login", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
