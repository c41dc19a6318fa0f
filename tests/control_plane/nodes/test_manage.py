"""GET /v1/nodes (public: filters, pagination), GET/PATCH/DELETE /v1/nodes/{id} (changes by the
operator only: another wallet gets 403)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.support.builders import (
    NDS,
    fresh_wallet,
    node_body,
    post_node,
    register_on_chain,
    sql,
    wallet_headers,
    wg_keys,
)


async def _register(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    **body: Any,
) -> str:
    node_id = await register_on_chain(w3, deployment, operator)
    response = await post_node(client, settings, operator, node_body(node_id, **body))
    assert response.status_code == 201, response.text
    return node_id


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


async def _ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/nodes", params=params)
    assert response.status_code == 200, response.text
    return [node["id"] for node in response.json()["items"]]


async def test_list_filters_by_country_protocol_online_and_score(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    german_wg = await _register(
        client, settings, w3, deployment, operator, protocols=("wireguard",)
    )
    german_both = await _register(client, settings, w3, deployment, operator)
    dutch_ovpn = await _register(
        client, settings, w3, deployment, operator, protocols=("openvpn",), country="NL"
    )
    await sql(settings, "UPDATE nodes SET last_heartbeat_at = now() WHERE id = :id", id=german_wg)
    await sql(
        settings,
        "UPDATE nodes SET last_heartbeat_at = now() - interval '5 minutes' WHERE id = :id",
        id=dutch_ovpn,
    )

    assert set(await _ids(client)) == {german_wg, german_both, dutch_ovpn}
    assert set(await _ids(client, country="DE")) == {german_wg, german_both}
    assert set(await _ids(client, country="nl")) == {dutch_ovpn}
    assert set(await _ids(client, protocol="openvpn")) == {german_both, dutch_ovpn}
    assert set(await _ids(client, protocol="wireguard", country="DE")) == {german_wg, german_both}
    assert await _ids(client, online="true") == [german_wg]
    assert set(await _ids(client, online="false")) == {german_both, dutch_ovpn}
    assert len(await _ids(client, min_score=0)) == 3
    assert await _ids(client, min_score=0.5) == []  # nobody is scored yet

    listed = (await client.get("/v1/nodes", params={"online": "true"})).json()["items"][0]
    assert listed["online"] is True
    assert listed["openvpn_ca_certificate"] is None
    assert listed["ipv4_pool"] is None

    for bad in ({"protocol": "ipsec"}, {"country": "DEU"}, {"min_score": -1}, {"limit": 0}):
        assert (await client.get("/v1/nodes", params=bad)).status_code == 422, bad
    too_many = await client.get("/v1/nodes", params={"limit": settings.max_page_size + 1})
    assert too_many.status_code == 422
    for cursor in ("garbage!", _cursor(["2026-01-01T00:00:00", "0x00"]), _cursor({"a": 1}), "é"):
        response = await client.get("/v1/nodes", params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)


async def test_list_pages_with_a_keyset_cursor(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    registered = [
        await _register(client, settings, w3, deployment, operator, protocols=("wireguard",))
        for _ in range(5)
    ]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/nodes", params=params)).json()
        seen += [node["id"] for node in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == registered  # oldest first, each once


async def test_the_operator_changes_its_node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    node_id = await _register(client, settings, w3, deployment, operator, protocols=("wireguard",))
    headers = wallet_headers(settings, operator.address)
    new_key = wg_keys().public

    response = await client.patch(
        f"/v1/nodes/{node_id}",
        json={"endpoint": "203.0.113.9:51000", "country": "fr", "wireguard_public_key": new_key},
        headers=headers,
    )

    assert response.status_code == 200, response.text
    node = response.json()
    assert (node["endpoint"], node["country"], node["wireguard_public_key"]) == (
        "203.0.113.9:51000",
        "FR",
        new_key,
    )
    assert node["openvpn_ca_certificate"] is None

    # Adding OpenVPN creates the node's CA; dropping WireGuard drops its key.
    response = await client.patch(
        f"/v1/nodes/{node_id}",
        json={"protocols": ["openvpn"], "openvpn_port": 1194},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    node = response.json()
    assert node["protocols"] == ["openvpn"]
    assert node["wireguard_public_key"] is None
    assert node["openvpn_port"] == 1194
    assert "BEGIN CERTIFICATE" in node["openvpn_ca_certificate"]

    bad: dict[str, Any]
    for bad in (
        {"protocols": []},
        {"country": None},
        {"wireguard_public_key": new_key},  # OpenVPN-only: no WireGuard key
        {"protocols": ["wireguard"]},  # WireGuard needs a key
        {"endpoint": "nowhere"},
        {"ipv4_pool": "10.9.0.0/16"},  # pools are fixed once configs exist
    ):
        rejected = await client.patch(f"/v1/nodes/{node_id}", json=bad, headers=headers)
        assert rejected.status_code == 422, (bad, rejected.text)


async def test_another_operator_cannot_change_or_delete_the_node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    node_a = await _register(client, settings, w3, deployment, operator)
    operator_b = await fresh_wallet(w3, deployment, 200 * NDS)
    await _register(client, settings, w3, deployment, operator_b)  # B operates a node too
    b = wallet_headers(settings, operator_b.address)

    patch = await client.patch(f"/v1/nodes/{node_a}", json={"country": "US"}, headers=b)
    delete = await client.delete(f"/v1/nodes/{node_a}", headers=b)

    assert patch.status_code == 403
    assert delete.status_code == 403
    assert patch.json()["error"]["code"] == "forbidden"
    node = (await client.get(f"/v1/nodes/{node_a}")).json()
    assert node["country"] == "DE"
    assert (await client.patch(f"/v1/nodes/{node_a}", json={"country": "US"})).status_code == 401


async def test_deleting_hides_the_node_and_bumps_its_revision(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    node_id = await _register(client, settings, w3, deployment, operator)
    headers = wallet_headers(settings, operator.address)
    ((before,),) = await sql(settings, "SELECT revision FROM nodes WHERE id = :id", id=node_id)

    response = await client.delete(f"/v1/nodes/{node_id}", headers=headers)

    assert response.status_code == 204
    assert (await client.get(f"/v1/nodes/{node_id}")).status_code == 404
    assert node_id not in await _ids(client)
    ((revision, deleted_at),) = await sql(
        settings, "SELECT revision, deleted_at FROM nodes WHERE id = :id", id=node_id
    )
    assert revision == before + 1
    assert deleted_at is not None
    assert (await client.delete(f"/v1/nodes/{node_id}", headers=headers)).status_code == 404
    assert (
        await client.patch(f"/v1/nodes/{node_id}", json={"country": "US"}, headers=headers)
    ).status_code == 404

    # Registered again: the same row, its revision carrying on (agents never see it go back).
    again = await post_node(client, settings, operator, node_body(node_id))
    assert again.status_code == 201, again.text
    ((again_revision,),) = await sql(
        settings, "SELECT revision FROM nodes WHERE id = :id", id=node_id
    )
    assert again_revision == revision + 1


async def test_unknown_and_malformed_node_ids(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/nodes/0x" + "12" * 32)).status_code == 404
    assert (await client.get("/v1/nodes/0x1234")).status_code == 422
