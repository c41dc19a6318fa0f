"""A payment counts the moment its receipt exists (no cached "never paid" or "lapsed", issue
11), and every config says whether it still works: `active`, `lapsed` or `revoked`."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.configs.test_issue import CONFIGS, issue, openvpn, wireguard
from tests.support.builders import NDS, fresh_wallet, subscribe, wallet_headers
from tests.support.devchain import advance_time

MONTH = 31 * 24 * 3600


async def _statuses(
    client: httpx.AsyncClient, settings: Settings, wallet: LocalAccount, **params: Any
) -> dict[str, str]:
    response = await client.get(
        CONFIGS, headers=wallet_headers(settings, wallet.address), params=params
    )
    assert response.status_code == 200, response.text
    return {item["id"]: item["status"] for item in response.json()["items"]}


async def test_a_wallet_that_asked_before_paying_gets_its_config_right_after_the_receipt(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
) -> None:
    assert settings.expiry_cache_seconds >= 5  # a cached "never paid" would still be served
    wallet = await fresh_wallet(w3, deployment, 100 * NDS)
    headers = wallet_headers(settings, wallet.address)
    before = await client.get("/v1/me/subscription", headers=headers)
    assert before.json()["active"] is False
    refused = await issue(client, settings, wallet, wireguard(node))
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "payment_required"
    assert "never paid" in refused.json()["error"]["message"]

    await subscribe(w3, deployment, wallet)  # a real transaction; no indexer run, no waiting

    issued = await issue(client, settings, wallet, wireguard(node))
    assert issued.status_code == 201, issued.text
    assert issued.json()["status"] == "active"
    status = await client.get("/v1/me/subscription", headers=headers)
    assert status.json()["active"] is True


async def test_a_lapsed_wallet_that_renews_gets_a_config_at_once(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
    subscriber: LocalAccount,
) -> None:
    assert (await issue(client, settings, subscriber, wireguard(node))).status_code == 201
    await advance_time(w3, MONTH)
    refused = await issue(client, settings, subscriber, wireguard(node))
    assert refused.status_code == 402
    assert "expired at" in refused.json()["error"]["message"]

    await subscribe(w3, deployment, subscriber)

    assert (await issue(client, settings, subscriber, wireguard(node))).status_code == 201


async def test_a_lapsed_config_lists_as_lapsed_and_a_renewal_brings_wireguard_back(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
    subscriber: LocalAccount,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    wg = (await issue(client, settings, subscriber, wireguard(node))).json()
    ovpn = (await issue(client, settings, subscriber, openvpn(node))).json()
    assert wg["status"] == ovpn["status"] == "active"
    assert await _statuses(client, settings, subscriber) == {
        wg["id"]: "active",
        ovpn["id"]: "active",
    }

    await advance_time(w3, MONTH)

    assert await _statuses(client, settings, subscriber) == {
        wg["id"]: "lapsed",
        ovpn["id"]: "lapsed",
    }
    one = await client.get(f"{CONFIGS}/{wg['id']}", headers=headers)
    assert one.status_code == 200
    assert one.json()["status"] == "lapsed"

    # The mirror still says lapsed; the list reads the chain afresh instead of trusting it.
    await subscribe(w3, deployment, subscriber)
    assert await _statuses(client, settings, subscriber) == {
        wg["id"]: "active",
        ovpn["id"]: "lapsed",  # its certificate expired with the old subscription
    }


async def test_revoked_configs_are_listed_as_revoked_only_when_asked(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    kept = (await issue(client, settings, subscriber, wireguard(node))).json()
    gone = (await issue(client, settings, subscriber, wireguard(node))).json()
    assert (await client.delete(f"{CONFIGS}/{gone['id']}", headers=headers)).status_code == 204

    assert await _statuses(client, settings, subscriber) == {kept["id"]: "active"}
    listed = await client.get(CONFIGS, headers=headers, params={"include_revoked": "true"})
    items = {item["id"]: item for item in listed.json()["items"]}
    assert items[kept["id"]]["status"] == "active"
    assert items[kept["id"]]["revoked_at"] is None
    assert items[gone["id"]]["status"] == "revoked"
    assert items[gone["id"]]["revoked_at"] is not None
    assert (await client.get(f"{CONFIGS}/{gone['id']}", headers=headers)).status_code == 404
