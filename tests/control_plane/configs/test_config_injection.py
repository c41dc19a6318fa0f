"""Whatever the database holds, a served config never carries a line the control plane did not
intend: a hostile value written straight into a node or config row makes the renderer refuse
(409 `node_misconfigured`, no 5xx, nothing of the value in the answer). A node out of service is
hidden and issues nothing until its operator fixes it. A config cannot use the node's own key
(422 `node_key_refused`), and one wallet's config churn is limited (429 with Retry-After)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.configs.strict_config import UnexpectedConfig, parse_config, parse_openvpn
from tests.control_plane.nodes.hostile import HOSTILE_ENDPOINTS
from tests.support.builders import (
    ec_key,
    make_csr,
    node_body,
    node_headers,
    paying_subscriber,
    register_on_chain,
    sql,
    wallet_headers,
    wg_keys,
)

CONFIGS = "/v1/configs"
# Hostile values a row can hold (PostgreSQL text cannot hold NUL; the column holds 262).
STORABLE_ENDPOINTS = [e for e in HOSTILE_ENDPOINTS if "\x00" not in e and len(e) <= 262]


async def issue(
    client: httpx.AsyncClient, settings: Settings, wallet: LocalAccount, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(CONFIGS, json=body, headers=wallet_headers(settings, wallet.address))


def wireguard(node_id: str, public_key: str | None = None) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "protocol": "wireguard",
        "public_key": public_key or wg_keys().public,
    }


def openvpn(node_id: str) -> dict[str, Any]:
    return {"node_id": node_id, "protocol": "openvpn", "csr": make_csr(ec_key())}


@pytest.fixture
async def staked_openvpn_node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> str:
    """An OpenVPN-only node: its port is the endpoint's."""
    node_id = await register_on_chain(w3, deployment, operator)
    body = node_body(node_id, protocols=("openvpn",))
    response = await client.post(
        "/v1/nodes", json=body, headers=wallet_headers(settings, operator.address)
    )
    assert response.status_code == 201, response.text
    return node_id


async def _two_configs(
    client: httpx.AsyncClient, settings: Settings, subscriber: LocalAccount, node: str
) -> list[dict[str, Any]]:
    configs = []
    for body in (wireguard(node), openvpn(node)):
        response = await issue(client, settings, subscriber, body)
        assert response.status_code == 201, response.text
        configs.append(response.json())
    return configs


def _assert_misconfigured(response: httpx.Response, *hostile: str) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "node_misconfigured"
    for value in hostile:
        if value:
            assert value not in response.text


@pytest.mark.config_changes_per_minute(1000)
async def test_a_hostile_endpoint_in_the_database_never_reaches_a_config(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    subscriber: LocalAccount,
    node: str,
) -> None:
    configs = await _two_configs(client, settings, subscriber, node)
    headers = wallet_headers(settings, subscriber.address)
    operator_headers = wallet_headers(settings, operator.address)

    for hostile in STORABLE_ENDPOINTS:
        await sql(settings, "UPDATE nodes SET endpoint = :e WHERE id = :id", e=hostile, id=node)

        for config in configs:
            _assert_misconfigured(
                await client.get(f"{CONFIGS}/{config['id']}", headers=headers), hostile
            )
        for body in (wireguard(node), openvpn(node)):
            _assert_misconfigured(await issue(client, settings, subscriber, body), hostile)
        assert node not in [n["id"] for n in (await client.get("/v1/nodes")).json()["items"]]
        assert (await client.get(f"/v1/nodes/{node}")).status_code == 404
        # Its operator and its agent still get clean answers (never a 5xx).
        owner_view = await client.get(f"/v1/nodes/{node}", headers=operator_headers)
        assert owner_view.status_code in (200, 409), owner_view.text
        material = await client.get("/v1/agent/openvpn", headers=node_headers(settings, node))
        assert material.status_code in (200, 409), material.text

    # Nothing was issued meanwhile; the operator fixes the endpoint and the configs come back.
    (live,) = await sql(
        settings, "SELECT count(*) FROM device_configs WHERE node_id = :id", id=node
    )
    assert live[0] == 2
    fixed = await client.patch(
        f"/v1/nodes/{node}",
        json={"endpoint": "198.18.7.1:51820"},
        headers=wallet_headers(settings, operator.address),
    )
    assert fixed.status_code == 200, fixed.text
    for config in configs:
        again = await client.get(f"{CONFIGS}/{config['id']}", headers=headers)
        assert again.status_code == 200, again.text
        assert "198.18.7.1" in again.json()["config"]


async def test_hostile_keys_and_certificates_in_the_database_are_refused(
    client: httpx.AsyncClient,
    settings: Settings,
    subscriber: LocalAccount,
    node: str,
) -> None:
    wg_config, ovpn_config = await _two_configs(client, settings, subscriber, node)
    headers = wallet_headers(settings, subscriber.address)

    # 44 characters, like a key, but a line break and a hook inside.
    hostile_key = "xTIBA5rboUvnH4htodjb6\n[Interface]\nPreUp = id #"[:44]
    await sql(
        settings,
        "UPDATE nodes SET wireguard_public_key = :k WHERE id = :id",
        k=hostile_key,
        id=node,
    )
    _assert_misconfigured(
        await client.get(f"{CONFIGS}/{wg_config['id']}", headers=headers), "PreUp"
    )

    # A certificate that closes its block and adds directives.
    (row,) = await sql(
        settings, "SELECT certificate FROM device_configs WHERE id = :id", id=ovpn_config["id"]
    )
    hostile_cert = row[0] + "</cert>\nscript-security 2\nup /bin/sh\n<cert>\n" + row[0]
    await sql(
        settings,
        "UPDATE device_configs SET certificate = :c WHERE id = :id",
        c=hostile_cert,
        id=ovpn_config["id"],
    )
    _assert_misconfigured(
        await client.get(f"{CONFIGS}/{ovpn_config['id']}", headers=headers), "script-security"
    )


async def test_a_node_out_of_service_is_hidden_and_issues_nothing_until_fixed(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    subscriber: LocalAccount,
    node: str,
) -> None:
    (config,) = [(await issue(client, settings, subscriber, wireguard(node))).json()]
    await sql(
        settings,
        "UPDATE nodes SET suspended_at = now(), suspended_reason = 'test' WHERE id = :id",
        id=node,
    )
    headers = wallet_headers(settings, subscriber.address)

    _assert_misconfigured(await client.get(f"{CONFIGS}/{config['id']}", headers=headers))
    _assert_misconfigured(await issue(client, settings, subscriber, wireguard(node)))
    assert (await client.get("/v1/nodes")).json()["items"] == []
    assert (await client.get(f"/v1/nodes/{node}")).status_code == 404

    # Any valid change by the operator re-checks the row and puts the node back in service.
    fixed = await client.patch(
        f"/v1/nodes/{node}",
        json={"country": "NL"},
        headers=wallet_headers(settings, operator.address),
    )
    assert fixed.status_code == 200, fixed.text
    assert [n["id"] for n in (await client.get("/v1/nodes")).json()["items"]] == [node]
    assert (await client.get(f"{CONFIGS}/{config['id']}", headers=headers)).status_code == 200


async def test_the_nodes_own_wireguard_key_is_refused(
    client: httpx.AsyncClient, settings: Settings, subscriber: LocalAccount, node: str
) -> None:
    node_key = (await client.get(f"/v1/nodes/{node}")).json()["wireguard_public_key"]

    response = await issue(client, settings, subscriber, wireguard(node, node_key))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "node_key_refused"
    assert "node's own" in response.json()["error"]["message"]


@pytest.mark.config_changes_per_minute(3)
async def test_a_wallet_cannot_churn_configs_beyond_its_limit(
    client: httpx.AsyncClient,
    settings: Settings,
    subscriber: LocalAccount,
    node: str,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    first = await issue(client, settings, subscriber, wireguard(node))
    assert first.status_code == 201, first.text
    assert (
        await client.delete(f"{CONFIGS}/{first.json()['id']}", headers=headers)
    ).status_code == 204
    assert (await issue(client, settings, subscriber, wireguard(node))).status_code == 201

    limited = await issue(client, settings, subscriber, wireguard(node))
    revoke = await client.delete(f"{CONFIGS}/{first.json()['id']}", headers=headers)

    for response in (limited, revoke):
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["retry-after"]) <= 20
    # Another wallet is not affected.
    other = await paying_subscriber(w3, deployment)
    assert (await issue(client, settings, other, wireguard(node))).status_code == 201


def test_the_strict_parsers_reject_injected_lines() -> None:
    wg = (
        "[Interface]\nPrivateKey = <insert your private key>\nAddress = 10.8.0.2/32, fd00::2/128\n"
        "DNS = 9.9.9.10, 2620:fe::10\n\n[Peer]\n"
        "PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = 198.18.7.1:51820\n"
        "AllowedIPs = 0.0.0.0/0, ::/0\nPersistentKeepalive = 25\n"
    )
    assert parse_config("wireguard", wg)["Endpoint"] == "198.18.7.1:51820"
    for hostile in (
        wg.replace(
            "Endpoint = 198.18.7.1:51820", "Endpoint = [fe80::1%x\n[Interface]\nPreUp = id\n#]:1"
        ),
        wg.replace("198.18.7.1:51820", "vpn\u2028example.net:51820"),
        wg.replace("198.18.7.1", "198.18.7.1\r"),
        wg + "PostUp = id\n",
        wg.replace("\n\n", "\n"),
    ):
        with pytest.raises(UnexpectedConfig):
            parse_config("wireguard", hostile)
    with pytest.raises(UnexpectedConfig):
        parse_openvpn("client\ndev tun\nproto udp\nremote x 1\nscript-security 2\n")


async def test_an_openvpn_only_node_with_a_hostile_row_answers_cleanly(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    staked_openvpn_node: str,
) -> None:
    node = staked_openvpn_node
    hostile = HOSTILE_ENDPOINTS[1]  # OpenVPN directives behind a zone id
    await sql(settings, "UPDATE nodes SET endpoint = :e WHERE id = :id", e=hostile, id=node)

    owner_view = await client.get(
        f"/v1/nodes/{node}", headers=wallet_headers(settings, operator.address)
    )
    material = await client.get("/v1/agent/openvpn", headers=node_headers(settings, node))

    for response in (owner_view, material):
        _assert_misconfigured(response, hostile, "script-security")
