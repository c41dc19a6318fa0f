"""POST /v1/nodes: only the on-chain operator of an Active node registers it; an OpenVPN node gets
its own CA, server certificate and tls-crypt key."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.db import unit_of_work
from control_plane.nodes.service import openvpn_crl, openvpn_material
from control_plane.settings import Settings
from tests.support.builders import (
    NDS,
    fresh_wallet,
    new_node_id,
    node_body,
    node_headers,
    post_node,
    request_exit,
    run,
    sql,
    wallet_headers,
    wg_keys,
)


async def test_the_operator_registers_a_wireguard_node(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    key = wg_keys().public
    body = node_body(
        staked_node.upper().replace("0X", "0x"),
        protocols=("wireguard",),
        endpoint="VPN.Example.net:51820",
        country="de",
        wireguard_public_key=key,
    )

    response = await post_node(client, settings, operator, body)

    assert response.status_code == 201, response.text
    node = response.json()
    assert node["id"] == staked_node  # normalized to lower case
    assert node["operator"] == operator.address.lower()
    assert node["protocols"] == ["wireguard"]
    assert node["endpoint"] == "vpn.example.net:51820"
    assert node["country"] == "DE"
    assert node["wireguard_public_key"] == key
    assert node["openvpn_port"] is None
    assert node["openvpn_ca_certificate"] is None
    assert node["online"] is False
    assert node["score"] is None
    # Default pools, derived from the node id: a private /16 and a ULA /112.
    ipv4 = ipaddress.IPv4Network(node["ipv4_pool"])
    ipv6 = ipaddress.IPv6Network(node["ipv6_pool"])
    assert ipv4 == ipaddress.ip_network(f"10.{int(staked_node[2:4], 16)}.0.0/16")
    assert ipv6.prefixlen == 112
    assert ipv6.subnet_of(ipaddress.IPv6Network("fd00::/8"))

    public = await client.get(f"/v1/nodes/{staked_node}")
    assert public.status_code == 200
    assert public.json()["ipv4_pool"] is None  # the pools are for the operator
    owner = await client.get(
        f"/v1/nodes/{staked_node}", headers=wallet_headers(settings, operator.address)
    )
    assert owner.json()["ipv4_pool"] == node["ipv4_pool"]


async def test_an_openvpn_node_gets_a_ca_a_server_certificate_and_a_tls_crypt_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    operator: LocalAccount,
    staked_node: str,
    tmp_path: Path,
) -> None:
    response = await post_node(
        client,
        settings,
        operator,
        node_body(staked_node, protocols=("openvpn",), endpoint="127.0.0.1:51820"),
    )

    assert response.status_code == 201, response.text
    node = response.json()
    assert node["openvpn_port"] == 51820  # an OpenVPN-only node: the endpoint's port
    ca = x509.load_pem_x509_certificate(node["openvpn_ca_certificate"].encode())
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650

    # Private keys are stored only encrypted.
    (row,) = await sql(
        settings,
        "SELECT openvpn_ca_key_encrypted, openvpn_server_key_encrypted, "
        "openvpn_tls_crypt_key_encrypted FROM nodes WHERE id = :id",
        id=staked_node,
    )
    for blob in row:
        assert b"PRIVATE KEY" not in blob
        assert b"Static key" not in blob

    async with unit_of_work(app.state.sessions) as session:
        material = await openvpn_material(session, settings, staked_node)
    assert material.ca_cert == node["openvpn_ca_certificate"]
    assert material.port == 51820
    # host 1 of OpenVPN's half (the upper) of the pool
    assert material.server_addresses[0] == f"10.{int(staked_node[2:4], 16)}.128.1/17"
    assert "PRIVATE KEY" in material.server_key
    lines = material.tls_crypt_key.strip().splitlines()
    start = lines.index("-----BEGIN OpenVPN Static key V1-----")
    assert lines[-1] == "-----END OpenVPN Static key V1-----"
    key_lines = lines[start + 1 : -1]
    assert len(key_lines) == 16
    assert all(len(line) == 32 and int(line, 16) >= 0 for line in key_lines)

    server = x509.load_pem_x509_certificate(material.server_cert.encode())
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    (tmp_path / "ca.pem").write_text(material.ca_cert)
    (tmp_path / "server.pem").write_text(material.server_cert)
    (tmp_path / "crl.pem").write_text(material.crl)
    verify = run(
        ["openssl", "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "server.pem"],
        cwd=tmp_path,
    )
    assert verify.returncode == 0, verify.stderr
    crl = run(["openssl", "crl", "-in", "crl.pem", "-CAfile", "ca.pem", "-noout"], cwd=tmp_path)
    assert crl.returncode == 0, crl.stderr
    assert "verify OK" in crl.stdout + crl.stderr
    async with unit_of_work(app.state.sessions) as session:
        assert "BEGIN X509 CRL" in await openvpn_crl(session, settings, staked_node)


async def test_both_protocols_need_two_ports(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    clash = node_body(staked_node, endpoint="vpn.example.net:1194")
    assert (await post_node(client, settings, operator, clash)).status_code == 422

    response = await post_node(client, settings, operator, node_body(staked_node))
    assert response.status_code == 201, response.text
    assert response.json()["openvpn_port"] == 1194  # the default beside WireGuard's 51820


async def test_another_wallet_cannot_register_the_node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    staked_node: str,
) -> None:
    stranger = await fresh_wallet(w3, deployment, 0)

    response = await post_node(client, settings, stranger, node_body(staked_node))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "operator" in response.json()["error"]["message"]


async def test_a_node_not_in_the_registry_cannot_be_registered(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount
) -> None:
    response = await post_node(client, settings, operator, node_body(new_node_id()))

    assert response.status_code == 403
    assert "not registered" in response.json()["error"]["message"]


async def test_an_exiting_node_cannot_be_registered(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    staked_node: str,
) -> None:
    await request_exit(w3, deployment, operator, staked_node)

    response = await post_node(client, settings, operator, node_body(staked_node))

    assert response.status_code == 403
    assert "not Active" in response.json()["error"]["message"]


async def test_registering_twice_is_a_conflict(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    assert (await post_node(client, settings, operator, node_body(staked_node))).status_code == 201

    again = await post_node(client, settings, operator, node_body(staked_node))

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


async def test_tokens_that_cannot_register(
    client: httpx.AsyncClient, settings: Settings, staked_node: str
) -> None:
    body = node_body(staked_node)
    assert (await client.post("/v1/nodes", json=body)).status_code == 401
    as_node = await client.post("/v1/nodes", json=body, headers=node_headers(settings, staked_node))
    assert as_node.status_code == 403


def _invalid_bodies() -> list[tuple[str, dict[str, Any]]]:
    node_id = "0x" + "ab" * 32
    key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    base: dict[str, Any] = {
        "node_id": node_id,
        "protocols": ["wireguard"],
        "endpoint": "vpn.example.net:51820",
        "country": "DE",
        "wireguard_public_key": key,
    }
    return [
        ("short node id", {**base, "node_id": "0xabc"}),
        ("node id without 0x", {**base, "node_id": "ab" * 33}),
        ("zero node id", {**base, "node_id": "0x" + "00" * 32}),
        ("no protocols", {**base, "protocols": []}),
        ("unknown protocol", {**base, "protocols": ["ipsec"]}),
        ("protocol twice", {**base, "protocols": ["wireguard", "wireguard"]}),
        ("no port", {**base, "endpoint": "vpn.example.net"}),
        ("port 0", {**base, "endpoint": "vpn.example.net:0"}),
        ("port too high", {**base, "endpoint": "vpn.example.net:70000"}),
        ("bad host", {**base, "endpoint": "vpn_example!.net:51820"}),
        ("unbracketed ipv6", {**base, "endpoint": "2001:db8::1:51820"}),
        ("unknown country", {**base, "country": "XX"}),
        ("country name", {**base, "country": "Germany"}),
        ("wireguard without key", {k: v for k, v in base.items() if k != "wireguard_public_key"}),
        ("key for an openvpn node", {**base, "protocols": ["openvpn"]}),
        ("key not base64", {**base, "wireguard_public_key": "!" * 44}),
        ("key of 31 bytes", {**base, "wireguard_public_key": "A" * 42 + "=="}),
        ("zero key", {**base, "wireguard_public_key": "A" * 43 + "="}),
        ("public ipv4 pool", {**base, "ipv4_pool": "8.8.0.0/16"}),
        ("ipv4 pool host bits", {**base, "ipv4_pool": "10.1.2.3/16"}),
        ("ipv4 pool too small", {**base, "ipv4_pool": "10.1.2.0/30"}),
        ("global ipv6 pool", {**base, "ipv6_pool": "2001:db8::/112"}),
        ("unknown field", {**base, "colour": "blue"}),
    ]


@pytest.mark.parametrize(
    ("case", "body"), _invalid_bodies(), ids=[case for case, _ in _invalid_bodies()]
)
async def test_invalid_registrations_are_422(
    client: httpx.AsyncClient, settings: Settings, case: str, body: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/nodes", json=body, headers=wallet_headers(settings, "0x" + "11" * 20)
    )

    assert response.status_code == 422, (case, response.text)
    assert response.json()["error"]["code"] == "invalid"


async def test_custom_pools_and_an_ipv6_endpoint(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, staked_node: str
) -> None:
    body = node_body(
        staked_node,
        protocols=("wireguard",),
        endpoint="[2001:DB8::7]:51820",
        ipv4_pool="192.168.40.0/24",
        ipv6_pool="fd00:40::/120",
    )

    response = await post_node(client, settings, operator, body)

    assert response.status_code == 201, response.text
    node = response.json()
    assert node["endpoint"] == "[2001:db8::7]:51820"
    assert node["ipv4_pool"] == "192.168.40.0/24"
    assert node["ipv6_pool"] == "fd00:40::/120"


async def test_registration_needs_nds_staked_by_the_caller(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    staked_node: str,
) -> None:
    """The chain, not the token, decides: a wallet holding NDS but operating nothing is refused."""
    rich = await fresh_wallet(w3, deployment, 500 * NDS)
    response = await post_node(client, settings, rich, node_body(staked_node))
    assert response.status_code == 403
