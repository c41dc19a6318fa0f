"""An operator cannot smuggle lines into subscribers' configs: every hostile endpoint, country,
key and pool is refused with 422 by POST and PATCH, nothing of it is stored or listed, and live
nodes cannot share an endpoint (409 `endpoint_in_use`)."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.nodes.hostile import (
    HOSTILE_COUNTRIES,
    HOSTILE_ENDPOINTS,
    HOSTILE_KEYS,
    HOSTILE_POOLS,
)
from tests.support.builders import node_body, post_node, register_on_chain, sql, wallet_headers


def _hostile_fields() -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [("endpoint", v) for v in HOSTILE_ENDPOINTS]
    fields += [("country", v) for v in HOSTILE_COUNTRIES]
    fields += [("wireguard_public_key", v) for v in HOSTILE_KEYS]
    fields += [(name, v) for name, values in HOSTILE_POOLS.items() for v in values]
    return fields


def _assert_refused(response: httpx.Response, field: str, value: str) -> None:
    assert response.status_code == 422, (field, value, response.text)
    error = response.json()["error"]
    assert error["code"] == "invalid", (field, value)
    assert field in error["message"], (field, value, error["message"])


async def test_post_refuses_every_hostile_value_and_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    for field, value in _hostile_fields():
        body = {**node_body(staked_node, endpoint="vpn.example.net:51820"), field: value}

        response = await post_node(client, settings, operator, body)

        _assert_refused(response, field, value)
    assert await sql(settings, "SELECT id FROM nodes") == []
    assert (await client.get("/v1/nodes")).json()["items"] == []


async def test_patch_refuses_every_hostile_value_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    registered = await post_node(
        client, settings, operator, node_body(staked_node, endpoint="vpn.example.net:51820")
    )
    assert registered.status_code == 201, registered.text
    headers = wallet_headers(settings, operator.address)
    patchable = [(f, v) for f, v in _hostile_fields() if not f.endswith("_pool")]

    for field, value in patchable:
        response = await client.patch(
            f"/v1/nodes/{staked_node}", json={field: value}, headers=headers
        )

        _assert_refused(response, field, value)
    (listed,) = (await client.get("/v1/nodes")).json()["items"]
    assert (listed["endpoint"], listed["country"]) == ("vpn.example.net:51820", "DE")
    assert listed["wireguard_public_key"] == registered.json()["wireguard_public_key"]


async def test_valid_spellings_are_stored_in_one_canonical_form(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    body = node_body(staked_node, endpoint="VPN-1.Example.NET:51820", country="nl")

    response = await post_node(client, settings, operator, body)

    assert response.status_code == 201, response.text
    assert (response.json()["endpoint"], response.json()["country"]) == (
        "vpn-1.example.net:51820",
        "NL",
    )


async def test_live_nodes_cannot_share_an_endpoint(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    staked_node: str,
) -> None:
    first = await post_node(
        client, settings, operator, node_body(staked_node, endpoint="198.18.7.1:51820")
    )
    assert first.status_code == 201, first.text
    second_id = await register_on_chain(w3, deployment, operator)

    # The same endpoint, spelled differently, is the same endpoint.
    clash = await post_node(
        client, settings, operator, node_body(second_id, endpoint="198.18.7.1:51820")
    )
    assert clash.status_code == 409, clash.text
    assert clash.json()["error"]["code"] == "endpoint_in_use"

    second = await post_node(
        client, settings, operator, node_body(second_id, endpoint="198.18.7.2:51820")
    )
    assert second.status_code == 201, second.text
    headers = wallet_headers(settings, operator.address)
    moved = await client.patch(
        f"/v1/nodes/{second_id}", json={"endpoint": "198.18.7.1:51820"}, headers=headers
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["error"]["code"] == "endpoint_in_use"

    # Once the first node is deleted, its endpoint is free.
    assert (await client.delete(f"/v1/nodes/{staked_node}", headers=headers)).status_code == 204
    moved = await client.patch(
        f"/v1/nodes/{second_id}", json={"endpoint": "198.18.7.1:51820"}, headers=headers
    )
    assert moved.status_code == 200, moved.text
