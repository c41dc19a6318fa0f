"""GET /v1/agent/openvpn: a node's agent reads its own OpenVPN material (CA, server certificate
and key, tls-crypt key, a fresh CRL with its validity, port and pools), and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from control_plane.tunnel.addresses import Pools, default_pools
from control_plane.tunnel.openvpn import CRL_VALIDITY, server_common_name
from node_agent.backends.openvpn import OpenVpnMaterial, check_material
from tests.support.builders import (
    NDS,
    ec_key,
    fresh_wallet,
    make_csr,
    node_body,
    node_headers,
    paying_subscriber,
    post_node,
    register_on_chain,
    wallet_headers,
)

MATERIAL = "/v1/agent/openvpn"


@pytest.fixture
async def operator(w3: Web3Client, deployment: Deployment) -> LocalAccount:
    return await fresh_wallet(w3, deployment, 1_000 * NDS)


async def _node(
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


@pytest.fixture
async def node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> str:
    """A node serving WireGuard and OpenVPN (port 1194), with the default pools."""
    return await _node(client, settings, w3, deployment, operator)


async def test_a_node_reads_its_openvpn_material(
    client: httpx.AsyncClient, settings: Settings, node: str
) -> None:
    before = datetime.now(UTC)

    response = await client.get(MATERIAL, headers=node_headers(settings, node))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"  # it holds private keys
    body = response.json()
    ipv4_pool, ipv6_pool = default_pools(node)
    assert body["node_id"] == node
    assert body["port"] == 1194
    # OpenVPN's half of each pool (the upper): its tun's route is not WireGuard's.
    half = Pools.of(ipv4_pool, ipv6_pool).for_protocol("openvpn")
    assert (body["ipv4_pool"], body["ipv6_pool"]) == (str(half.ipv4), str(half.ipv6))
    assert body["server_addresses"][0] == f"{half.ipv4.network_address + 1}/17"
    ca = x509.load_pem_x509_certificate(body["ca_cert"].encode())
    server = x509.load_pem_x509_certificate(body["server_cert"].encode())
    server.verify_directly_issued_by(ca)
    (cn,) = server.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert cn.value == server_common_name(node)
    key = serialization.load_pem_private_key(body["server_key"].encode(), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert key.public_key().public_bytes(der, spki) == server.public_key().public_bytes(der, spki)
    assert "-----BEGIN OpenVPN Static key V1-----" in body["tls_crypt_key"]
    crl = x509.load_pem_x509_crl(body["crl"].encode())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0
    next_update = datetime.fromisoformat(body["crl_next_update"])
    assert next_update == crl.next_update_utc
    assert datetime.fromisoformat(body["crl_last_update"]) == crl.last_update_utc
    assert before + CRL_VALIDITY - timedelta(seconds=5) <= next_update
    # The agent's own parser and checks accept it as it comes.
    check_material(OpenVpnMaterial.from_json(body), datetime.now(UTC))


async def test_the_crl_lists_a_revoked_certificate_at_once(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    subscriber = await paying_subscriber(w3, deployment)
    wallet = wallet_headers(settings, subscriber.address)
    issued = await client.post(
        "/v1/configs",
        json={"node_id": node, "protocol": "openvpn", "csr": make_csr(ec_key())},
        headers=wallet,
    )
    assert issued.status_code == 201, issued.text
    config = issued.json()
    kept = await client.post(
        "/v1/configs",
        json={"node_id": node, "protocol": "openvpn", "csr": make_csr(ec_key())},
        headers=wallet,
    )
    assert kept.status_code == 201, kept.text

    assert (await client.delete(f"/v1/configs/{config['id']}", headers=wallet)).status_code == 204
    response = await client.get(MATERIAL, headers=node_headers(settings, node))

    assert response.status_code == 200, response.text
    crl = x509.load_pem_x509_crl(response.json()["crl"].encode())
    assert [f"{entry.serial_number:x}" for entry in crl] == [config["cert_serial"]]


async def test_each_node_gets_its_own_material(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    other = await _node(client, settings, w3, deployment, operator, openvpn_port=1195)

    mine = (await client.get(MATERIAL, headers=node_headers(settings, node))).json()
    theirs = (await client.get(MATERIAL, headers=node_headers(settings, other))).json()

    assert mine["ca_cert"] != theirs["ca_cert"]
    assert mine["server_key"] != theirs["server_key"]
    assert theirs["port"] == 1195
    # Asking for another node's material with one's own token is refused.
    response = await client.get(
        MATERIAL, params={"node_id": other}, headers=node_headers(settings, node)
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"]
    same = await client.get(
        MATERIAL, params={"node_id": node.upper().replace("0X", "0x")},
        headers=node_headers(settings, node),
    )  # fmt: skip
    assert same.status_code == 200


async def test_a_node_without_openvpn_gets_404(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    node_id = await _node(client, settings, w3, deployment, operator, protocols=("wireguard",))

    response = await client.get(MATERIAL, headers=node_headers(settings, node_id))

    assert response.status_code == 404
    assert "OpenVPN" in response.json()["error"]["message"]


async def test_a_deleted_or_unknown_node_gets_404(
    client: httpx.AsyncClient, settings: Settings, node: str, operator: LocalAccount
) -> None:
    deleted = await client.delete(
        f"/v1/nodes/{node}", headers=wallet_headers(settings, operator.address)
    )
    assert deleted.status_code == 204, deleted.text

    gone = await client.get(MATERIAL, headers=node_headers(settings, node))
    unknown = await client.get(MATERIAL, headers=node_headers(settings, "0x" + "12" * 32))

    assert gone.status_code == 404
    assert unknown.status_code == 404


async def test_only_a_node_token_reads_material(
    client: httpx.AsyncClient, settings: Settings, node: str, operator: LocalAccount
) -> None:
    anonymous = await client.get(MATERIAL)
    wallet = await client.get(MATERIAL, headers=wallet_headers(settings, operator.address))
    forged = await client.get(MATERIAL, headers={"authorization": "Bearer not-a-token"})

    assert anonymous.status_code == 401
    assert wallet.status_code == 403  # even the node's own operator: keys go to the agent only
    assert forged.status_code == 401
    assert "server_key" not in wallet.text


async def test_the_route_is_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    operation = schema["paths"][MATERIAL]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403", "404"}
    assert "crl_next_update" in str(schema["components"]["schemas"]["OpenVpnMaterialOut"])
