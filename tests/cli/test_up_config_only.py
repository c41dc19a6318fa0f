"""`nodus up --config-only` (what a host without root, or another device, gets) against the real
control plane and chain: the node picked by country, keys made here, the config written with
mode 0600 and the private key that matches what the API registered (the WireGuard public key;
the OpenVPN certificate's key), the QR PNG decoding to exactly that file, and the one command
to run printed."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.cli.conftest import Cli, ServedControlPlane
from tests.support.builders import (
    MIN_STAKE,
    fresh_wallet,
    node_body,
    paying_subscriber,
    register_on_chain,
    wallet_headers,
)
from tests.support.qr import qr_texts


async def add_node(
    w3: Web3Client, deployment: Deployment, settings: Settings, api: ServedControlPlane
) -> str:
    operator = await fresh_wallet(w3, deployment, MIN_STAKE)
    node_id = await register_on_chain(w3, deployment, operator)
    async with httpx.AsyncClient(base_url=api.url) as http:
        response = await http.post(
            "/v1/nodes",
            json=node_body(node_id, endpoint="198.18.0.1:51820", country="DE"),
            headers=wallet_headers(settings, operator.address),
        )
    assert response.status_code == 201, response.text
    return node_id


def private_mode(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_config_only_writes_a_private_config_with_the_matching_key_and_its_qr(
    cli: Cli,
    served_api: ServedControlPlane,
    w3: Web3Client,
    deployment: Deployment,
    settings: Settings,
    tmp_path: Path,
) -> None:
    node_id = await add_node(w3, deployment, settings, served_api)
    subscriber = await paying_subscriber(w3, deployment)
    env: dict[str, str | None] = {"NODUS_API_URL": served_api.url}
    conf, png = tmp_path / "phone.conf", tmp_path / "phone.png"

    result = await cli(
        "up", "--country", "de", "--config-only", str(conf), "--qr-png", str(png), "--json",
        key=subscriber, env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["node"] == node_id
    assert summary["run"].startswith(f"sudo wg-quick up {conf}")
    assert private_mode(conf)
    assert private_mode(png)
    text = conf.read_text()
    private = re.search(r"^PrivateKey = (\S+)$", text, re.MULTILINE)
    assert private is not None
    public = X25519PrivateKey.from_private_bytes(base64.b64decode(private.group(1))).public_key()
    async with httpx.AsyncClient(base_url=served_api.url) as http:
        issued = await http.get(
            f"/v1/configs/{summary['config_id']}",
            headers=wallet_headers(settings, subscriber.address),
        )
    assert (
        issued.json()["public_key"]
        == base64.b64encode(
            public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ).decode()
    )
    assert qr_texts(png) == [text]

    # OpenVPN: the key in the profile is the one the certificate was issued for.
    ovpn = tmp_path / "laptop.ovpn"
    result = await cli(
        "up", "--node", node_id, "--protocol", "openvpn", "--config-only", str(ovpn), "--json",
        key=subscriber, env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"] == f"sudo openvpn --config {ovpn}"
    assert private_mode(ovpn)
    profile = ovpn.read_text()
    key_pem = profile.split("<key>\n", 1)[1].split("</key>", 1)[0]
    cert_pem = profile.split("<cert>\n", 1)[1].split("</cert>", 1)[0]
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*raw) == certificate.public_key().public_bytes(*raw)
