"""GET /v1/configs (the caller's, paginated), GET /v1/configs/{id}, DELETE /v1/configs/{id}
(owner only; others 404): revocation bumps the node's revision and puts an OpenVPN serial in the
node's CRL. Deleting a node or dropping a protocol revokes its configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.db import unit_of_work
from control_plane.nodes.service import openvpn_crl
from control_plane.settings import Settings
from tests.control_plane.configs.test_issue import CONFIGS, issue, openvpn, wireguard
from tests.support.builders import (
    fresh_wallet,
    paying_subscriber,
    pem_blocks,
    run,
    sql,
    wallet_headers,
)


async def _revision(settings: Settings, node_id: str) -> int:
    ((revision,),) = await sql(settings, "SELECT revision FROM nodes WHERE id = :id", id=node_id)
    return int(revision)


async def _crl(app: FastAPI, settings: Settings, node_id: str) -> x509.CertificateRevocationList:
    async with unit_of_work(app.state.sessions) as session:
        pem = await openvpn_crl(session, settings, node_id)
    return x509.load_pem_x509_crl(pem.encode())


async def _listed(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get(CONFIGS, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_revoking_an_openvpn_config_puts_its_serial_in_the_crl(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    tmp_path: Path,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    kept = (await issue(client, settings, subscriber, wireguard(node))).json()
    config = (await issue(client, settings, subscriber, openvpn(node))).json()
    assert {c["id"] for c in (await _listed(client, headers))["items"]} == {
        kept["id"],
        config["id"],
    }
    before = await _revision(settings, node)
    assert len(list(await _crl(app, settings, node))) == 0

    response = await client.delete(f"{CONFIGS}/{config['id']}", headers=headers)

    assert response.status_code == 204
    assert await _revision(settings, node) == before + 1
    assert [c["id"] for c in (await _listed(client, headers))["items"]] == [kept["id"]]
    assert (await client.get(f"{CONFIGS}/{config['id']}", headers=headers)).status_code == 404
    assert (await client.delete(f"{CONFIGS}/{config['id']}", headers=headers)).status_code == 404

    crl = await _crl(app, settings, node)
    serial = int(config["cert_serial"], 16)
    revoked = crl.get_revoked_certificate_by_serial_number(serial)
    assert revoked is not None
    assert crl.next_update_utc is not None
    assert 6 <= (crl.next_update_utc - crl.last_update_utc).days <= 8
    # openssl agrees: the CRL is signed by the node's CA and revokes the certificate.
    (tmp_path / "ca.pem").write_text(pem_blocks(config["config"], "ca"))
    (tmp_path / "cert.pem").write_text(pem_blocks(config["config"], "cert"))
    async with unit_of_work(app.state.sessions) as session:
        (tmp_path / "crl.pem").write_text(await openvpn_crl(session, settings, node))
    verify = run(
        ["openssl", "verify", "-crl_check", "-CAfile", "ca.pem", "-CRLfile", "crl.pem", "cert.pem"],
        cwd=tmp_path,
    )
    assert verify.returncode != 0
    assert "certificate revoked" in verify.stdout + verify.stderr


async def test_configs_are_private_to_their_owner(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
    subscriber: LocalAccount,
) -> None:
    config = (await issue(client, settings, subscriber, wireguard(node))).json()
    stranger = wallet_headers(settings, (await fresh_wallet(w3, deployment, 0)).address)

    assert (await client.get(f"{CONFIGS}/{config['id']}", headers=stranger)).status_code == 404
    assert (await client.delete(f"{CONFIGS}/{config['id']}", headers=stranger)).status_code == 404
    assert (await _listed(client, stranger))["items"] == []
    owner = wallet_headers(settings, subscriber.address)
    again = await client.get(f"{CONFIGS}/{config['id']}", headers=owner)
    assert again.status_code == 200
    assert again.json() == config
    assert (await client.get(f"{CONFIGS}/not-a-uuid", headers=owner)).status_code == 422
    assert (await client.get(CONFIGS)).status_code == 401


@pytest.mark.device_limit(10)
async def test_the_list_pages_oldest_first(
    client: httpx.AsyncClient, settings: Settings, node: str, subscriber: LocalAccount
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    issued = [(await issue(client, settings, subscriber, wireguard(node))).json() for _ in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await _listed(client, headers, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [item["id"] for item in page["items"]]
        for item in page["items"]:
            assert "config" not in item
            assert item["expires_at"] is not None
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [c["id"] for c in issued]
    assert (await client.get(CONFIGS, headers=headers, params={"limit": 1000})).status_code == 422


async def test_deleting_the_node_revokes_its_configs(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    await issue(client, settings, subscriber, wireguard(node))
    await issue(client, settings, subscriber, openvpn(node))
    before = await _revision(settings, node)

    deleted = await client.delete(
        f"/v1/nodes/{node}", headers=wallet_headers(settings, operator.address)
    )

    assert deleted.status_code == 204
    assert (await _listed(client, headers))["items"] == []
    assert await _revision(settings, node) == before + 1
    live = await sql(
        settings,
        "SELECT count(*) FROM device_configs WHERE node_id = :id AND revoked_at IS NULL",
        id=node,
    )
    assert live == [(0,)]


async def test_dropping_a_protocol_revokes_its_configs(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    await issue(client, settings, subscriber, wireguard(node))
    kept = (await issue(client, settings, subscriber, openvpn(node))).json()
    before = await _revision(settings, node)

    response = await client.patch(
        f"/v1/nodes/{node}",
        json={"protocols": ["openvpn"]},
        headers=wallet_headers(settings, operator.address),
    )

    assert response.status_code == 200, response.text
    assert [c["id"] for c in (await _listed(client, headers))["items"]] == [kept["id"]]
    assert await _revision(settings, node) == before + 1


async def test_a_device_whose_protocol_was_dropped_is_told_why_and_what_next(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    """The operator turns OpenVPN off: the device fetching its config learns that the node no
    longer serves OpenVPN and how to get a working one (410 `config_revoked`), not a bare 404
    that reads like a typo; the list says why it was revoked. A config its owner revoked stays
    a plain 404."""
    headers = wallet_headers(settings, subscriber.address)
    stranded = (await issue(client, settings, subscriber, openvpn(node))).json()
    dropped = (await issue(client, settings, subscriber, wireguard(node))).json()
    assert (await client.delete(f"{CONFIGS}/{dropped['id']}", headers=headers)).status_code == 204

    response = await client.patch(
        f"/v1/nodes/{node}",
        json={"protocols": ["wireguard"]},
        headers=wallet_headers(settings, operator.address),
    )
    assert response.status_code == 200, response.text

    fetched = await client.get(f"{CONFIGS}/{stranded['id']}", headers=headers)
    assert fetched.status_code == 410, fetched.text
    error = fetched.json()["error"]
    assert error["code"] == "config_revoked"
    assert "turned openvpn off and the node no longer serves it" in error["message"]
    assert "wireguard" in error["message"]  # what it does serve: the next step
    assert "POST /v1/configs" in error["message"]
    listed = {c["id"]: c for c in (await _listed(client, headers, include_revoked="true"))["items"]}
    assert listed[stranded["id"]]["status"] == "revoked"
    assert listed[stranded["id"]]["revoked_reason"] == "protocol_dropped"
    assert listed[dropped["id"]]["revoked_reason"] == "by_owner"
    # Another wallet still cannot tell the config exists; the owner's own revocation is a 404.
    stranger = wallet_headers(settings, operator.address)
    assert (await client.get(f"{CONFIGS}/{stranded['id']}", headers=stranger)).status_code == 404
    assert (await client.get(f"{CONFIGS}/{dropped['id']}", headers=headers)).status_code == 404

    # OpenVPN back on: the old certificate stays revoked, and the device is told to get a new one.
    back = await client.patch(
        f"/v1/nodes/{node}",
        json={"protocols": ["wireguard", "openvpn"]},
        headers=wallet_headers(settings, operator.address),
    )
    assert back.status_code == 200, back.text
    again = await client.get(f"{CONFIGS}/{stranded['id']}", headers=headers)
    assert again.status_code == 410
    assert "serves openvpn again now" in again.json()["error"]["message"]
    assert "protocol openvpn on this node" in again.json()["error"]["message"]


async def test_a_device_on_a_deleted_node_is_told_to_pick_another_node(
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    headers = wallet_headers(settings, subscriber.address)
    config = (await issue(client, settings, subscriber, wireguard(node))).json()
    deleted = await client.delete(
        f"/v1/nodes/{node}", headers=wallet_headers(settings, operator.address)
    )
    assert deleted.status_code == 204, deleted.text

    fetched = await client.get(f"{CONFIGS}/{config['id']}", headers=headers)
    assert fetched.status_code == 410, fetched.text
    assert fetched.json()["error"]["code"] == "config_revoked"
    assert "another node" in fetched.json()["error"]["message"]
    listed = (await _listed(client, headers, include_revoked="true"))["items"]
    assert [(c["id"], c["revoked_reason"]) for c in listed] == [(config["id"], "node_deleted")]


async def test_the_config_follows_the_nodes_endpoint(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    node: str,
) -> None:
    account = await paying_subscriber(w3, deployment)
    headers = wallet_headers(settings, account.address)
    config = (await issue(client, settings, account, wireguard(node))).json()

    await client.patch(
        f"/v1/nodes/{node}",
        json={"endpoint": "vpn2.example.net:51821"},
        headers=wallet_headers(settings, operator.address),
    )

    again = (await client.get(f"{CONFIGS}/{config['id']}", headers=headers)).json()
    assert "Endpoint = vpn2.example.net:51821\n" in again["config"]
    assert again["address"] == config["address"]
