"""GET /v1/me/subscription against the real app, database and anvil: the chain's expiry and
price, the indexed payments (exact wei strings, newest first, paginated, pending until
`confirmations` deep), and the auth and outage answers."""

from __future__ import annotations

from datetime import datetime

import httpx
from eth_account import Account
from fastapi import FastAPI

from control_plane.auth.principal import Role
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.settings import Settings
from tests.control_plane.indexer.onchain import (
    NDS,
    PERIOD,
    approve_subscriptions,
    as_governance,
    at,
    contract_expiry,
    fresh_wallet,
    mine,
    pay,
    subscribe,
    sync,
)
from tests.control_plane.subscriptions.conftest import bearer, serving
from tests.support.devchain import Anvil, advance_time

URL = "/v1/me/subscription"


def expiry_of(body: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(body["expires_at"]))


async def test_requires_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    garbage = await client.get(URL, headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401


async def test_a_node_token_is_forbidden(client: httpx.AsyncClient, settings: Settings) -> None:
    headers = bearer(settings, "0x" + "22" * 20, Role.NODE, node_id="0x" + "ab" * 32)
    response = await client.get(URL, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_a_wallet_that_never_paid(
    client: httpx.AsyncClient, settings: Settings, deployment: Deployment
) -> None:
    wallet = Account.create().address
    response = await client.get(URL, headers=bearer(settings, wallet))
    assert response.status_code == 200
    assert response.json() == {
        "address": wallet.lower(),
        "active": False,
        "expires_at": None,
        "price_per_period": str(10 * NDS),
        "payments": [],
    }


async def test_a_paid_subscription_with_exact_amounts(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    price = 10 * NDS + 1  # 3 periods: 30000000000000000003, beyond a float's precision
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    await as_governance(w3, deployment, subscriptions.functions.setPrice(price))
    user = await fresh_wallet(w3, deployment)
    receipt = await pay(w3, deployment, user, 3)
    await sync(app.state.services)

    response = await client.get(URL, headers=bearer(settings, user.address))

    (log_index,) = [e["logIndex"] for e in receipt["logs"] if e["address"] == subscriptions.address]
    assert response.status_code == 200
    body = response.json()
    assert body["address"] == user.address.lower()
    assert body["active"] is True
    assert expiry_of(body) == at(await contract_expiry(w3, deployment, user.address))
    assert body["price_per_period"] == "10000000000000000001"
    assert body["payments"] == [
        {
            "tx_hash": "0x" + bytes(receipt["transactionHash"]).hex(),
            "log_index": log_index,
            "block_number": receipt["blockNumber"],
            "months": 3,
            "amount": "30000000000000000003",
            "status": "confirmed",  # confirmations = 0
        }
    ]


async def test_payments_newest_first_and_paginated(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    user = await fresh_wallet(w3, deployment)
    await approve_subscriptions(w3, deployment, user)
    for months in (1, 2, 3):
        await subscribe(w3, deployment, user, months)
    await sync(app.state.services)
    headers = bearer(settings, user.address)

    everything = (await client.get(URL, headers=headers)).json()["payments"]
    first = (await client.get(URL, params={"limit": 2}, headers=headers)).json()["payments"]
    rest = (await client.get(URL, params={"limit": 2, "offset": 2}, headers=headers)).json()
    beyond = (await client.get(URL, params={"offset": 3}, headers=headers)).json()

    assert [p["months"] for p in everything] == [3, 2, 1]
    assert [p["amount"] for p in everything] == [str(m * 10 * NDS) for m in (3, 2, 1)]
    assert [p["block_number"] for p in everything] == sorted(
        (p["block_number"] for p in everything), reverse=True
    )
    assert first == everything[:2]
    assert rest["payments"] == everything[2:]
    assert beyond["payments"] == []
    for bad in ({"limit": settings.max_page_size + 1}, {"limit": 0}, {"offset": -1}):
        response = await client.get(URL, params=bad, headers=headers)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid"
    page = await client.get(URL, params={"limit": settings.max_page_size}, headers=headers)
    assert page.status_code == 200


async def test_pending_until_confirmations_deep(
    settings: Settings, anvil: Anvil, w3: Web3Client, deployment: Deployment
) -> None:
    deep = settings.model_copy(update={"confirmations": 2})
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)
    async with serving(deep, chain) as (application, http):
        await sync(application.state.services)
        headers = bearer(deep, user.address)

        async def status() -> str:
            body = (await http.get(URL, headers=headers)).json()
            return str(body["payments"][0]["status"])

        assert await status() == "pending"  # in the head block
        await mine(w3)
        assert await status() == "pending"  # one block on top
        await mine(w3)
        assert await status() == "confirmed"  # two blocks on top


async def test_expiry_is_the_chains_even_before_the_indexer_runs(
    client: httpx.AsyncClient, settings: Settings, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)

    body = (await client.get(URL, headers=bearer(settings, user.address))).json()

    assert body["active"] is True
    assert expiry_of(body) == at(await contract_expiry(w3, deployment, user.address))
    assert body["payments"] == []  # not indexed yet


async def test_a_lapsed_subscription_is_inactive_by_chain_time(
    client: httpx.AsyncClient, settings: Settings, w3: Web3Client, deployment: Deployment
) -> None:
    user = await fresh_wallet(w3, deployment)
    await pay(w3, deployment, user, 1)
    await advance_time(w3, PERIOD + 1)

    body = (await client.get(URL, headers=bearer(settings, user.address))).json()

    assert body["active"] is False
    assert expiry_of(body) == at(await contract_expiry(w3, deployment, user.address))


async def test_chain_unreachable_is_503_with_retry_after(
    settings: Settings, deployment: Deployment
) -> None:
    dead = Web3ChainReader.connect("http://127.0.0.1:9", deployment, timeout=1)
    dead.base_delay = 0.0
    async with serving(settings, dead) as (_, http):
        response = await http.get(URL, headers=bearer(settings, Account.create().address))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["error"]["code"] == "chain_unavailable"
