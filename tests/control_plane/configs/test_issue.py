"""POST /v1/configs: who gets a config (paid on-chain, within the device limit, on a live Active
node serving the protocol), what it holds, and what is refused (402, 404, 409, 422)."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.settings import Settings
from tests.support.builders import (
    ec_key,
    fresh_wallet,
    make_csr,
    node_body,
    node_headers,
    pem_blocks,
    post_node,
    register_on_chain,
    request_exit,
    rsa_key,
    sql,
    subscribe,
    wallet_headers,
    wg_keys,
)
from tests.support.devchain import advance_time

CONFIGS = "/v1/configs"


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


def openvpn(node_id: str, csr: str | None = None) -> dict[str, Any]:
    return {"node_id": node_id, "protocol": "openvpn", "csr": csr or make_csr(ec_key())}


async def test_a_paying_subscriber_gets_a_wireguard_config(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
) -> None:
    account = await fresh_wallet(w3, deployment, 100 * 10**18)
    expiry = await subscribe(w3, deployment, account)
    keys = wg_keys()

    response = await issue(client, settings, account, wireguard(node, keys.public))

    assert response.status_code == 201, response.text
    config = response.json()
    assert config["node_id"] == node
    assert config["protocol"] == "wireguard"
    assert config["public_key"] == keys.public
    assert datetime.fromisoformat(config["expires_at"]) == datetime.fromtimestamp(expiry, UTC)
    ipv4, ipv6 = config["address"]
    (row,) = await sql(settings, "SELECT ipv4_pool, ipv6_pool FROM nodes WHERE id = :id", id=node)
    v4 = ipaddress.ip_interface(ipv4)
    v6 = ipaddress.ip_interface(ipv6)
    assert v4.network.prefixlen == 32
    assert v6.network.prefixlen == 128
    assert v4.ip in ipaddress.ip_network(str(row[0]))
    assert v6.ip in ipaddress.ip_network(str(row[1]))
    # Index 0 and 1 of each pool are the network and the node itself.
    assert int(v4.ip) - int(ipaddress.ip_network(str(row[0])).network_address) >= 2
    # WireGuard allocates in the lower half of each pool (OpenVPN's tun has the upper one).
    assert v4.ip in next(ipaddress.IPv4Network(str(row[0])).subnets())
    assert v6.ip in next(ipaddress.IPv6Network(str(row[1])).subnets())
    node_info = (await client.get(f"/v1/nodes/{node}")).json()
    assert config["config"] == (
        "[Interface]\n"
        "PrivateKey = <insert your private key>\n"
        f"Address = {ipv4}, {ipv6}\n"
        "DNS = 9.9.9.10, 2620:fe::10\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {node_info['wireguard_public_key']}\n"
        "Endpoint = 127.0.0.1:51820\n"
        "AllowedIPs = 0.0.0.0/0, ::/0\n"
        "PersistentKeepalive = 25\n"
    )
    ((revision,),) = await sql(settings, "SELECT revision FROM nodes WHERE id = :id", id=node)
    assert revision == 2  # registration, then this config


async def test_a_paying_subscriber_gets_an_openvpn_certificate_and_profile(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
    subscriber: LocalAccount,
) -> None:
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    expiry: int = await subscriptions.functions.expiresAt(subscriber.address).call()
    key = ec_key()

    response = await issue(client, settings, subscriber, openvpn(node, make_csr(key, "ignored")))

    assert response.status_code == 201, response.text
    config = response.json()
    profile = config["config"]
    cert = x509.load_pem_x509_certificate(pem_blocks(profile, "cert").encode())
    assert cert.subject.rfc4514_string() == f"CN={config['id']}"  # the CSR's subject is ignored
    assert f"{cert.serial_number:x}" == config["cert_serial"]
    assert 2**64 < cert.serial_number < 2**128
    assert cert.not_valid_after_utc == datetime.fromtimestamp(expiry, UTC)
    assert datetime.fromisoformat(config["expires_at"]) == cert.not_valid_after_utc
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.public_key() == key.public_key()
    ((pool4, pool6),) = await sql(
        settings, "SELECT ipv4_pool, ipv6_pool FROM nodes WHERE id = :id", id=node
    )
    ipv4 = ipaddress.IPv4Interface(config["address"][0]).ip
    ipv6 = ipaddress.IPv6Interface(config["address"][1]).ip
    assert ipv4 in list(ipaddress.IPv4Network(str(pool4)).subnets())[1]  # OpenVPN: upper half
    assert ipv6 in list(ipaddress.IPv6Network(str(pool6)).subnets())[1]
    owner = wallet_headers(settings, await _operator(settings, node))
    node_info = (await client.get(f"/v1/nodes/{node}", headers=owner)).json()
    assert pem_blocks(profile, "ca").strip() == node_info["openvpn_ca_certificate"].strip()
    for line in (
        "client",
        "dev tun",
        "proto udp",
        "remote 127.0.0.1 1194",
        "remote-cert-tls server",
    ):
        assert f"\n{line}\n" in f"\n{profile}"
    assert "<key>\n<insert your private key>\n</key>" in profile
    assert "-----BEGIN OpenVPN Static key V1-----" in pem_blocks(profile, "tls-crypt")


async def _operator(settings: Settings, node_id: str) -> str:
    ((operator,),) = await sql(settings, "SELECT operator FROM nodes WHERE id = :id", id=node_id)
    return str(operator)


async def test_a_wallet_that_never_paid_gets_402(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
) -> None:
    unpaid = await fresh_wallet(w3, deployment, 0)

    response = await issue(client, settings, unpaid, wireguard(node))

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "payment_required"
    assert "never paid" in response.json()["error"]["message"]


async def test_a_lapsed_subscription_gets_402_with_its_expiry(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
    subscriber: LocalAccount,
) -> None:
    assert (await issue(client, settings, subscriber, wireguard(node))).status_code == 201
    await advance_time(w3, 31 * 24 * 3600)

    response = await issue(client, settings, subscriber, wireguard(node))

    assert response.status_code == 402
    message = response.json()["error"]["message"]
    assert "expired at" in message
    ((expires_at,),) = await sql(
        settings,
        "SELECT expires_at FROM subscribers WHERE address = :a",
        a=subscriber.address.lower(),
    )
    assert expires_at.isoformat() in message


@pytest.mark.device_limit(3)
async def test_the_device_limit_counts_live_configs_across_nodes(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    other = await register_on_chain(w3, deployment, operator)
    assert (await post_node(client, settings, operator, node_body(other))).status_code == 201
    issued = [
        (await issue(client, settings, subscriber, body)).json()
        for body in (wireguard(node), openvpn(node), wireguard(other))
    ]

    over = await issue(client, settings, subscriber, wireguard(other))

    assert over.status_code == 409
    assert "device limit" in over.json()["error"]["message"]
    headers = wallet_headers(settings, subscriber.address)
    assert (await client.delete(f"{CONFIGS}/{issued[0]['id']}", headers=headers)).status_code == 204
    assert (await issue(client, settings, subscriber, wireguard(other))).status_code == 201


async def test_a_public_key_is_live_once_per_node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    key = wg_keys().public
    first = await issue(client, settings, subscriber, wireguard(node, key))
    assert first.status_code == 201

    again = await issue(client, settings, subscriber, wireguard(node, key))
    assert again.status_code == 409
    assert "public key" in again.json()["error"]["message"]

    # Another node may carry the same key; after a revoke this node may again.
    other = await register_on_chain(w3, deployment, operator)
    assert (await post_node(client, settings, operator, node_body(other))).status_code == 201
    assert (await issue(client, settings, subscriber, wireguard(other, key))).status_code == 201
    headers = wallet_headers(settings, subscriber.address)
    revoked = await client.delete(f"{CONFIGS}/{first.json()['id']}", headers=headers)
    assert revoked.status_code == 204
    assert (await issue(client, settings, subscriber, wireguard(node, key))).status_code == 201


@pytest.mark.parametrize(
    "public_key",
    [
        "not base64 at all, but forty-four chars long",
        base64.b64encode(b"\x01" * 31).decode(),  # 31 bytes
        base64.b64encode(b"\x01" * 33).decode(),  # 33 bytes
        base64.b64encode(bytes(32)).decode(),  # all zero
        base64.b64encode(b"\x01" * 32).decode().rstrip("="),  # not canonical
        "",
    ],
    ids=["garbage", "31-bytes", "33-bytes", "all-zero", "no-padding", "empty"],
)
async def test_an_invalid_wireguard_key_is_422(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    public_key: str,
) -> None:
    response = await issue(client, settings, subscriber, wireguard(node, public_key or " "))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


def _tampered_csr() -> str:
    """A CSR whose signature does not match its content (one byte of the subject changed)."""
    pem = make_csr(ec_key(), "aaaaaaaa")
    der = x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"aaaaaaaa", b"aaaaaaab")
    body = base64.encodebytes(tampered).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    "csr",
    [
        pytest.param("not a csr", id="garbage"),
        pytest.param(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            id="bad-der",
        ),
        pytest.param(_tampered_csr(), id="bad-signature"),
        pytest.param(make_csr(ec_key(ec.SECP521R1())), id="p521"),
        pytest.param(make_csr(ec_key(ec.SECP256K1())), id="secp256k1"),
        pytest.param(make_csr(rsa_key(1024)), id="rsa-1024"),
        pytest.param(make_csr(ed25519.Ed25519PrivateKey.generate()), id="ed25519"),
    ],
)
async def test_an_invalid_csr_is_422(
    client: httpx.AsyncClient, settings: Settings, node: str, subscriber: LocalAccount, csr: str
) -> None:
    response = await issue(client, settings, subscriber, openvpn(node, csr))

    assert response.status_code == 422, response.text
    assert "csr" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "key", [pytest.param("p384", id="ec-p384"), pytest.param("rsa", id="rsa-2048")]
)
async def test_accepted_csr_keys(
    client: httpx.AsyncClient, settings: Settings, node: str, subscriber: LocalAccount, key: str
) -> None:
    private = ec_key(ec.SECP384R1()) if key == "p384" else rsa_key(2048)
    response = await issue(client, settings, subscriber, openvpn(node, make_csr(private)))
    assert response.status_code == 201, response.text


async def test_node_checks_come_first(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    node: str,
    subscriber: LocalAccount,
) -> None:
    unknown = await issue(client, settings, subscriber, wireguard("0x" + "42" * 32))
    assert unknown.status_code == 404

    wg_only = await register_on_chain(w3, deployment, operator)
    body = node_body(wg_only, protocols=("wireguard",))
    assert (await post_node(client, settings, operator, body)).status_code == 201
    unsupported = await issue(client, settings, subscriber, openvpn(wg_only))
    assert unsupported.status_code == 422
    assert "does not serve openvpn" in unsupported.json()["error"]["message"]

    await request_exit(w3, deployment, operator, wg_only)
    inactive = await issue(client, settings, subscriber, wireguard(wg_only))
    assert inactive.status_code == 409
    assert "not Active" in inactive.json()["error"]["message"]

    headers = wallet_headers(settings, operator.address)
    assert (await client.delete(f"/v1/nodes/{node}", headers=headers)).status_code == 204
    deleted = await issue(client, settings, subscriber, wireguard(node))
    assert deleted.status_code == 404


async def test_who_may_ask(
    client: httpx.AsyncClient, settings: Settings, node: str, subscriber: LocalAccount
) -> None:
    assert (await client.post(CONFIGS, json=wireguard(node))).status_code == 401
    as_node = await client.post(CONFIGS, json=wireguard(node), headers=node_headers(settings, node))
    assert as_node.status_code == 403
    mixed = {**wireguard(node), "csr": make_csr(ec_key())}
    assert (await issue(client, settings, subscriber, mixed)).status_code == 422
    other = {"node_id": node, "protocol": "ipsec", "public_key": wg_keys().public}
    assert (await issue(client, settings, subscriber, other)).status_code == 422
