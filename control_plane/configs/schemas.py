"""What the configs API takes and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from control_plane.nodes.schemas import NodeId, WireGuardPublicKey
from control_plane.patterns import CERT_SERIAL, CURSOR, NODE_ID, TUNNEL_ADDRESS, WIREGUARD_KEY
from control_plane.tunnel.openvpn import load_csr

MAX_CSR_CHARS = 16_384  # an RSA-8192 CSR is ~3.3 KB of PEM


def _csr(value: str) -> str:
    load_csr(value)
    return value


Csr = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_CSR_CHARS,
        description="PEM certificate signing request; key EC P-256/P-384 or RSA >= 2048 bits "
        "(its subject and extensions are ignored)",
    ),
    AfterValidator(_csr),
]


class WireGuardConfigIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "node_id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
                "protocol": "wireguard",
                "public_key": "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
            }
        },
    )

    node_id: NodeId
    protocol: Literal["wireguard"]
    public_key: WireGuardPublicKey


class OpenVpnConfigIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "node_id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
                "protocol": "openvpn",
                "csr": "-----BEGIN CERTIFICATE REQUEST-----\n...\n"
                "-----END CERTIFICATE REQUEST-----\n",
            }
        },
    )

    node_id: NodeId
    protocol: Literal["openvpn"]
    csr: Csr


ConfigIn = Annotated[WireGuardConfigIn | OpenVpnConfigIn, Field(discriminator="protocol")]
ConfigStatus = Literal["active", "lapsed", "revoked"]
RevokedReason = Literal["by_owner", "protocol_dropped", "node_deleted"]

_SUMMARY_EXAMPLE: dict[str, Any] = {
    "id": "5b0c6f3e-8a51-4c1e-9a0b-2f8d6c1e7a42",
    "node_id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
    "protocol": "wireguard",
    "address": ["10.110.4.17/32", "fd3c:9a41:27be::411/128"],
    "public_key": "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
    "cert_serial": None,
    "expires_at": "2026-06-01T12:00:00Z",
    "status": "active",
    "created_at": "2026-05-02T08:15:00Z",
    "revoked_at": None,
    "revoked_reason": None,
}


class ConfigSummary(BaseModel):
    """One of the caller's configs (without the config text: GET /v1/configs/{id})."""

    model_config = ConfigDict(json_schema_extra={"example": _SUMMARY_EXAMPLE})

    id: uuid.UUID
    node_id: str = Field(pattern=NODE_ID)
    protocol: Literal["wireguard", "openvpn"]
    address: list[Annotated[str, Field(pattern=TUNNEL_ADDRESS)]] = Field(
        description='the device\'s tunnel addresses: ["<IPv4>/32", "<IPv6>/128"] (what '
        "wg-quick's Address line holds)"
    )
    public_key: str | None = Field(
        pattern=WIREGUARD_KEY, description="WireGuard: the device's public key"
    )
    cert_serial: str | None = Field(
        pattern=CERT_SERIAL,
        description="OpenVPN: the certificate's serial, lower-case hex without leading zeros",
    )
    expires_at: datetime | None = Field(
        description="WireGuard: the subscription's expiry; OpenVPN: the certificate's notAfter "
        "(the earlier of it and the subscription's expiry). The node drops the peer then; a "
        "renewal brings a WireGuard peer back, an OpenVPN device needs a new certificate."
    )
    status: ConfigStatus = Field(
        description="`active`: the node serves it; `lapsed`: `expires_at` has passed (renew "
        "on-chain; an OpenVPN device then needs a new config); `revoked`: revoked by you, or "
        "with its node or protocol (listed only with `include_revoked=true`)"
    )
    created_at: datetime
    revoked_at: datetime | None = Field(description="when it was revoked; null while live")
    revoked_reason: RevokedReason | None = Field(
        default=None,
        description="why it was revoked: `by_owner` (you), `protocol_dropped` (the node's "
        "operator turned its protocol off: issue a config with a protocol the node serves), "
        "`node_deleted` (issue one on another node); null while live (or revoked before "
        "reasons were recorded)",
    )


class ConfigOut(ConfigSummary):
    """A config with its text: a wg-quick file whose `PrivateKey = <insert your private key>`
    the client fills, or an inline OpenVPN profile whose `<key>` block holds the same
    placeholder for the private key the CSR was made with."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                **_SUMMARY_EXAMPLE,
                "config": "[Interface]\nPrivateKey = <insert your private key>\n"
                "Address = 10.110.4.17/32, fd3c:9a41:27be::411/128\n"
                "DNS = 9.9.9.10, 2620:fe::10\n\n[Peer]\n"
                "PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
                "Endpoint = vpn.example.net:51820\nAllowedIPs = 0.0.0.0/0, ::/0\n"
                "PersistentKeepalive = 25\n",
            }
        }
    )

    status: Literal["active", "lapsed"] = Field(
        description="`active`: the node serves it; `lapsed`: `expires_at` has passed (renew "
        "on-chain; an OpenVPN device then needs a new config). A config you revoked is a 404 "
        "here; one its node's operator revoked (protocol turned off, node deleted) is a 410 "
        "`config_revoked` saying why and what to do next."
    )
    config: str


class ConfigPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"items": [_SUMMARY_EXAMPLE], "next_cursor": None}}
    )

    items: list[ConfigSummary]
    next_cursor: str | None = Field(
        pattern=CURSOR, description="pass as `cursor` for the next page; null: done"
    )
