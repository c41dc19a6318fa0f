"""The control plane's OpenVPN material (CA, server certificate and key, tls-crypt key, CRL,
port, pools), its checks, and the source that fetches it through the agent's one client."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from node_agent.client import MATERIAL_PATH, ControlPlaneClient, ControlPlaneError, Refused

SERIAL = re.compile(r"^[0-9a-f]{1,64}$")
_STATIC_KEY = "-----BEGIN OpenVPN Static key V1-----"


class InvalidMaterial(ValueError):
    """The control plane's OpenVPN material failed a check; the last good material stays."""


class MaterialUnavailable(Exception):
    """The material could not be fetched (control plane unreachable, refused, timed out)."""


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OpenVpnMaterial:
    """`GET /v1/agent/openvpn`, parsed."""

    node_id: str
    port: int
    ca_cert: str
    server_cert: str
    server_key: str
    tls_crypt_key: str
    crl: str
    ipv4_pool: ipaddress.IPv4Network
    ipv6_pool: ipaddress.IPv6Network

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpenVpnMaterial:
        """Parses the endpoint's JSON (the shape only; `check_material` checks the crypto)."""
        try:
            port = data["port"]
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise InvalidMaterial("port: not a UDP port")
            texts = {
                name: data[name]
                for name in ("node_id", "ca_cert", "server_cert", "server_key", "tls_crypt_key")
            }
            texts["crl"] = data["crl"]
            for name, value in texts.items():
                if not isinstance(value, str) or not value.strip():
                    raise InvalidMaterial(f"{name}: missing or empty")
            ipv4 = ipaddress.IPv4Network(str(data["ipv4_pool"]), strict=True)
            ipv6 = ipaddress.IPv6Network(str(data["ipv6_pool"]), strict=True)
        except KeyError as exc:
            raise InvalidMaterial(f"{exc.args[0]}: missing") from exc
        except ValueError as exc:
            if isinstance(exc, InvalidMaterial):
                raise
            raise InvalidMaterial(f"pools: {exc}") from exc
        if ipv4.num_addresses < 4 or ipv6.num_addresses < 4:
            raise InvalidMaterial("pools: too small for a server and a client")
        return cls(
            node_id=texts["node_id"],
            port=port,
            ca_cert=texts["ca_cert"],
            server_cert=texts["server_cert"],
            server_key=texts["server_key"],
            tls_crypt_key=texts["tls_crypt_key"],
            crl=texts["crl"],
            ipv4_pool=ipv4,
            ipv6_pool=ipv6,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "port": self.port,
            "ca_cert": self.ca_cert,
            "server_cert": self.server_cert,
            "server_key": self.server_key,
            "tls_crypt_key": self.tls_crypt_key,
            "crl": self.crl,
            "ipv4_pool": str(self.ipv4_pool),
            "ipv6_pool": str(self.ipv6_pool),
        }

    @property
    def server_ipv4(self) -> ipaddress.IPv4Address:
        return self.ipv4_pool.network_address + 1

    @property
    def server_ipv6(self) -> ipaddress.IPv6Address:
        return self.ipv6_pool.network_address + 1


@dataclass(frozen=True, slots=True)
class CrlInfo:
    """What the backend needs to know of a CRL it checked."""

    last_update: datetime
    next_update: datetime
    number: int | None
    revoked: frozenset[str]  # serials, as `normalize_serial` spells them
    ca_fingerprint: str  # sha256 of the issuing CA's DER


def normalize_serial(value: str) -> str:
    """A certificate serial as the control plane and the client-connect script spell it:
    lower-case hex without leading zeros (colons and a 0x prefix are dropped). ValueError if it
    is not hex or longer than 64 digits (X.509 allows 20 octets)."""
    text = value.strip().lower().removeprefix("0x").replace(":", "")
    text = text.lstrip("0") or ("0" if text else "")
    if not SERIAL.match(text):
        raise ValueError(f"not a certificate serial: {value[:80]!r}")
    return text


def check_material(material: OpenVpnMaterial, now: datetime) -> CrlInfo:
    """Checks that the material hangs together before anything of it is used: the server
    certificate is signed by the CA and matches the key, the tls-crypt key is an OpenVPN static
    key, and the CRL is signed by the CA and not expired. Raises InvalidMaterial."""
    try:
        ca = x509.load_pem_x509_certificate(material.ca_cert.encode())
        server = x509.load_pem_x509_certificate(material.server_cert.encode())
    except ValueError as exc:
        raise InvalidMaterial(f"certificates: {exc}") from exc
    try:
        server.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidMaterial("server_cert: not signed by the node's CA") from exc
    try:
        key = serialization.load_pem_private_key(material.server_key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidMaterial("server_key: not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidMaterial("server_key: neither EC nor RSA")
    if _spki(key.public_key()) != _spki(server.public_key()):
        raise InvalidMaterial("server_key: does not match server_cert")
    if _STATIC_KEY not in material.tls_crypt_key:
        raise InvalidMaterial("tls_crypt_key: not an OpenVPN static key")
    info = crl_info(material.crl, ca)
    if info.next_update <= now:
        raise InvalidMaterial(f"crl: expired at {info.next_update.isoformat()}")
    return info


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def crl_info(crl_pem: str, ca: x509.Certificate) -> CrlInfo:
    """The CRL's dates, number and revoked serials, once its signature is checked against `ca`.
    Raises InvalidMaterial."""
    try:
        crl = x509.load_pem_x509_crl(crl_pem.encode())
    except ValueError as exc:
        raise InvalidMaterial(f"crl: {exc}") from exc
    public_key = ca.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise InvalidMaterial("ca_cert: neither an EC nor an RSA key")
    if crl.issuer != ca.subject or not crl.is_signature_valid(public_key):
        raise InvalidMaterial("crl: not signed by the node's CA")
    next_update = crl.next_update_utc
    if next_update is None:
        raise InvalidMaterial("crl: has no nextUpdate")
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return CrlInfo(
        last_update=crl.last_update_utc,
        next_update=next_update,
        number=number,
        revoked=frozenset(f"{entry.serial_number:x}" for entry in crl),
        ca_fingerprint=hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def is_newer_crl(candidate: CrlInfo, current: CrlInfo | None) -> bool:
    """Whether `candidate` may replace `current`: always under another CA (the node was
    re-registered); under the same CA only if it is not older (by CRL number, else thisUpdate).
    An older CRL could miss a revocation the current one has."""
    if current is None or candidate.ca_fingerprint != current.ca_fingerprint:
        return True
    if candidate.number is not None and current.number is not None:
        return candidate.number >= current.number
    return candidate.last_update >= current.last_update


MaterialSource = Callable[[], Awaitable[OpenVpnMaterial]]


class ClientMaterialSource:
    """Fetches `GET /v1/agent/openvpn` through the agent's control-plane client (its sign-in,
    token renewal, retries and breaker). Failures surface as MaterialUnavailable or
    InvalidMaterial: the backend backs off with jitter and keeps the last good material."""

    def __init__(self, client: ControlPlaneClient) -> None:
        self._client = client

    async def __call__(self) -> OpenVpnMaterial:
        try:
            payload = await self._client.openvpn_material()
        except Refused as exc:
            if exc.status == 404:
                raise MaterialUnavailable(
                    f"GET {MATERIAL_PATH}: 404, the control plane says this node does not serve "
                    "OpenVPN (is it registered with protocols including openvpn?)"
                ) from exc
            raise MaterialUnavailable(f"GET {MATERIAL_PATH}: {exc}") from exc
        except ControlPlaneError as exc:
            raise MaterialUnavailable(f"GET {MATERIAL_PATH}: {exc}") from exc
        if not isinstance(payload, dict):
            raise InvalidMaterial("the answer is not a JSON object")
        return OpenVpnMaterial.from_json(payload)
