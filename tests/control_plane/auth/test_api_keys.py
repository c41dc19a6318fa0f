"""API keys: shown once, stored as an HMAC with a lookup prefix, acting as their owner."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi import FastAPI
from sqlalchemy import select

from control_plane.auth.models import ApiKey
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.db import unit_of_work
from control_plane.settings import Settings
from tests.control_plane.auth.conftest import add_chain_node, bearer, new_node_id

KEY_FORMAT = re.compile(r"nds_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")


def key_header(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "ci"
) -> dict[str, Any]:
    response = await client.post("/v1/api-keys", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_list_use_and_revoke(app: FastAPI, client: httpx.AsyncClient) -> None:
    wallet = Account.create()
    session = await bearer(client, wallet)

    created = await create_key(client, session, name="  deploy bot  ")

    assert set(created) == {"id", "name", "prefix", "key", "created_at"}
    assert created["name"] == "deploy bot"
    assert KEY_FORMAT.fullmatch(created["key"])
    assert created["key"].startswith(f"nds_{created['prefix']}_")

    listed = (await client.get("/v1/api-keys", headers=session)).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert created["key"] not in str(listed)
    assert listed[0]["last_used_at"] is None

    me = await client.get("/v1/auth/me", headers=key_header(created["key"]))
    assert me.status_code == 200
    assert me.json() == {
        "subject": wallet.address.lower(),
        "roles": ["subscriber"],
        "node_id": None,
    }
    listed = (await client.get("/v1/api-keys", headers=key_header(created["key"]))).json()
    assert listed["items"][0]["last_used_at"] is not None

    revoked = await client.delete(f"/v1/api-keys/{created['id']}", headers=session)
    assert revoked.status_code == 204

    refused = await client.get("/v1/auth/me", headers=key_header(created["key"]))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/v1/api-keys", headers=session)).json() == {"items": []}
    again = await client.delete(f"/v1/api-keys/{created['id']}", headers=session)
    assert again.status_code == 404


async def test_only_prefix_and_hmac_are_stored(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    created = await create_key(client, await bearer(client, Account.create()))

    async with unit_of_work(app.state.sessions) as session:
        row = (await session.scalars(select(ApiKey))).one()
    secret = settings.api_key_secret.get_secret_value().encode()
    assert row.prefix == created["prefix"]
    assert row.secret_hash == hmac.new(secret, created["key"].encode(), hashlib.sha256).digest()
    secret_part = created["key"].rsplit("_", 1)[1]
    stored = repr([getattr(row, c.key) for c in ApiKey.__table__.columns])
    assert secret_part not in stored


async def test_key_roles_are_recomputed_on_each_use(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    wallet = Account.create()
    created = await create_key(client, await bearer(client, wallet))

    await add_chain_node(app, wallet.address, active=True)

    me = await client.get("/v1/auth/me", headers=key_header(created["key"]))
    assert me.json()["roles"] == ["operator", "subscriber"]


async def test_another_owners_key_cannot_be_revoked(client: httpx.AsyncClient) -> None:
    owner, other = await bearer(client, Account.create()), await bearer(client, Account.create())
    created = await create_key(client, owner)

    response = await client.delete(f"/v1/api-keys/{created['id']}", headers=other)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/api-keys", headers=other)).json() == {"items": []}
    assert (await client.get("/v1/auth/me", headers=key_header(created["key"]))).status_code == 200


async def test_unknown_key_id_is_404_and_malformed_id_is_422(client: httpx.AsyncClient) -> None:
    session = await bearer(client, Account.create())
    unknown = "0b4f5f0e-8d2a-4c6b-9a51-2f1d7f3c9e10"
    assert (await client.delete(f"/v1/api-keys/{unknown}", headers=session)).status_code == 404
    assert (await client.delete("/v1/api-keys/nope", headers=session)).status_code == 422


async def test_an_api_key_cannot_create_keys(client: httpx.AsyncClient) -> None:
    created = await create_key(client, await bearer(client, Account.create()))

    response = await client.post(
        "/v1/api-keys", json={"name": "child"}, headers=key_header(created["key"])
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_a_node_token_cannot_use_api_keys(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    node_id = new_node_id()
    token = issue_access_token(
        settings, Principal(subject=node_id, roles=frozenset({Role.NODE}), node_id=node_id)
    )
    headers = {"authorization": f"Bearer {token}"}

    assert (
        await client.post("/v1/api-keys", json={"name": "x"}, headers=headers)
    ).status_code == 403
    assert (await client.get("/v1/api-keys", headers=headers)).status_code == 403


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"), id="tampered-secret"),
        pytest.param(lambda key: "nds_zzzzzzzz_" + key[13:], id="unknown-prefix"),
        pytest.param(lambda key: key + "A", id="too-long"),
        pytest.param(lambda key: "nds_", id="bare-prefix"),
        pytest.param(lambda key: key.upper().replace("NDS_", "nds_"), id="case-changed"),
    ],
)
async def test_wrong_key_is_401(client: httpx.AsyncClient, mangle: object) -> None:
    created = await create_key(client, await bearer(client, Account.create()))
    assert callable(mangle)

    response = await client.get("/v1/auth/me", headers=key_header(mangle(created["key"])))

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid or revoked API key"


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_bad_name_is_422(client: httpx.AsyncClient, name: str) -> None:
    session = await bearer(client, Account.create())
    response = await client.post("/v1/api-keys", json={"name": name}, headers=session)
    assert response.status_code == 422


async def test_live_keys_are_bounded(client: httpx.AsyncClient) -> None:
    session = await bearer(client, Account.create())
    for i in range(25):
        await create_key(client, session, name=f"k{i}")

    response = await client.post("/v1/api-keys", json={"name": "one more"}, headers=session)

    assert response.status_code == 409
