"""OpenVPN: each node's own CA, its server certificate, its tls-crypt key, client certificates
signed from CSRs, the CRL, and the client's inline profile. Pure functions (no database).

- The CA is EC P-256, valid `CA_VALIDITY`, `pathLen 0`: it signs the node's server certificate,
  its clients' certificates and its CRL, nothing else.
- A client certificate: subject CN = the config id, a random 128-bit serial, `clientAuth`,
  valid until the subscription's expiry. The client's private key never leaves the client (it
  sends a CSR; the profile carries a `<key>` placeholder).
- The CRL lists revoked certificates that have not yet expired, and is valid `CRL_VALIDITY`:
  the agent fetches a fresh one whenever the node's revision moves and at least daily (an
  expired CRL locks every client out).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from control_plane.tunnel import render_checks
from control_plane.tunnel.wireguard import PRIVATE_KEY_PLACEHOLDER

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=3650)
CRL_VALIDITY = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=5)  # notBefore / lastUpdate this far back
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ACCEPTED_CURVES = ("secp256r1", "secp384r1")
TLS_CRYPT_KEY_BYTES = 256  # 2048 bits, OpenVPN's static key format


@dataclass(frozen=True, slots=True)
class NodePki:
    """What a node gets at registration. Private keys are PEM (PKCS#8); the caller encrypts them
    before they are stored."""

    ca_cert: str
    ca_key: bytes
    server_cert: str
    server_key: bytes
    tls_crypt_key: bytes


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    pem: str
    serial: int
    not_after: datetime


def serial_hex(serial: int) -> str:
    """How serials are stored and shown: lower-case hex without leading zeros."""
    return f"{serial:x}"


def server_common_name(node_id: str) -> str:
    """The server certificate's CN (the node id without 0x: 64 characters, X.509's limit);
    profiles pin it with `verify-x509-name`."""
    return node_id.removeprefix("0x").lower()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _random_serial() -> int:
    """A random positive 128-bit serial (RFC 5280: at most 20 octets, unpredictable)."""
    return secrets.randbits(128) or 1


def tls_crypt_key() -> bytes:
    """A fresh OpenVPN static key (what `openvpn --genkey secret` writes): 2048 random bits."""
    hex_key = secrets.token_bytes(TLS_CRYPT_KEY_BYTES).hex()
    lines = [hex_key[i : i + 32] for i in range(0, len(hex_key), 32)]
    return (
        "#\n# 2048 bit OpenVPN static key\n#\n"
        "-----BEGIN OpenVPN Static key V1-----\n"
        + "\n".join(lines)
        + "\n-----END OpenVPN Static key V1-----\n"
    ).encode()


def create_node_pki(node_id: str, now: datetime | None = None) -> NodePki:
    """A new CA for the node, a server certificate (serverAuth) signed by it, and a tls-crypt
    key."""
    now = now or datetime.now(UTC)
    short = node_id.removeprefix("0x")[:16]
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Nodus"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Nodus node {short} CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _leaf_builder(ca_cert, ca_key, server_key.public_key(), now)
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_common_name(node_id))])
        )
        .serial_number(_random_serial())
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return NodePki(
        ca_cert=_pem(ca_cert),
        ca_key=_key_pem(ca_key),
        server_cert=_pem(server_cert),
        server_key=_key_pem(server_key),
        tls_crypt_key=tls_crypt_key(),
    )


def _leaf_builder(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: CertificatePublicKeyTypes,
    now: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .not_valid_before(now - CLOCK_SKEW)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """A PEM CSR with a valid self-signature over an EC P-256/P-384 or RSA >= 2048-bit key.
    Raises ValueError with a readable reason."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("csr: not a PEM certificate signing request") from exc
    try:
        key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise ValueError("csr: unreadable or unsupported public key") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ACCEPTED_CURVES:
            raise ValueError(f"csr: EC keys must be on P-256 or P-384, not {key.curve.name}")
    elif isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise ValueError(f"csr: RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits")
    else:
        raise ValueError("csr: the key must be EC (P-256 or P-384) or RSA (>= 2048 bits)")
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, InvalidSignature, x509.UnsupportedGeneralNameType) as exc:
        raise ValueError("csr: its signature cannot be checked") from exc
    if not valid:
        raise ValueError("csr: its signature does not match its key")
    return csr


def sign_client_certificate(
    *,
    ca_cert_pem: str,
    ca_key_pem: bytes,
    csr: x509.CertificateSigningRequest,
    common_name: str,
    not_after: datetime,
    now: datetime | None = None,
) -> ClientCertificate:
    """The client's certificate for `csr`'s key: CN = `common_name` (the CSR's own subject and
    extensions are ignored), `clientAuth`, a random 128-bit serial, valid until `not_after`."""
    now = now or datetime.now(UTC)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    serial = _random_serial()
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    cert = (
        _leaf_builder(ca_cert, ca_key, csr.public_key(), now)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .serial_number(serial)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(csr.public_key(), rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=isinstance(csr.public_key(), ec.EllipticCurvePublicKey),
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ClientCertificate(pem=_pem(cert), serial=serial, not_after=cert.not_valid_after_utc)


def build_crl(
    *,
    ca_cert_pem: str,
    ca_key_pem: bytes,
    revoked: list[tuple[int, datetime]],
    now: datetime | None = None,
) -> str:
    """A CRL signed by the node's CA listing `(serial, revoked_at)`, valid for `CRL_VALIDITY`.
    Its CRL number is the issue time in milliseconds (monotonic across replicas as far as their
    clocks agree)."""
    now = now or datetime.now(UTC)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for serial, revoked_at in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(revoked_at)
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def client_profile(
    *,
    host: str,
    port: int,
    node_id: str,
    ca_cert: str,
    client_cert: str,
    tls_crypt: str,
) -> str:
    """The client's inline profile. `<key>` holds a placeholder: the client puts its own private
    key (the one its CSR was made with) there. Every interpolated value is checked against its
    grammar first (`render_checks.UnsafeConfigValue` otherwise): a stored value can never add a
    directive (`up`, `script-security`, `management`, ...) or end an inline block."""
    remote = f"remote {render_checks.host(host)} {render_checks.port(port)}"
    name = server_common_name(render_checks.node_id(node_id))
    ca = render_checks.certificate(ca_cert, "node's CA certificate")
    cert = render_checks.certificate(client_cert, "client certificate")
    static_key = render_checks.tls_crypt_key(tls_crypt)
    return "\n".join(
        [
            "client",
            "dev tun",
            "proto udp",
            remote,
            "resolv-retry infinite",
            "nobind",
            "persist-key",
            "persist-tun",
            "remote-cert-tls server",
            f"verify-x509-name {name} name",
            "auth-nocache",
            "verb 3",
            "<ca>",
            ca,
            "</ca>",
            "<cert>",
            cert,
            "</cert>",
            "<key>",
            PRIVATE_KEY_PLACEHOLDER,
            "</key>",
            "<tls-crypt>",
            static_key,
            "</tls-crypt>",
            "",
        ]
    )
