"""What the nodes API takes and returns. Inputs are normalized here (node ids and host names
lower-case, countries upper-case), so services and the database see one spelling."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from control_plane.patterns import (
    ADDRESS,
    CURSOR,
    IPV4_CIDR,
    IPV6_CIDR,
    NODE_ID,
    WIREGUARD_KEY,
    WholeNumber,
)
from control_plane.tunnel.addresses import parse_ipv4_pool, parse_ipv6_pool
from control_plane.tunnel.grammar import (
    COUNTRIES,
    ENDPOINT_PATTERN,
    MAX_ENDPOINT_LENGTH,
    canonical_endpoint,
    format_endpoint,
    openvpn_port_of,
    parse_country,
    parse_endpoint,
)
from control_plane.tunnel.wireguard import check_public_key

__all__ = ["COUNTRIES", "format_endpoint", "openvpn_port_of", "parse_endpoint"]  # re-exported

Protocol = Literal["wireguard", "openvpn"]
PROTOCOLS: tuple[Protocol, ...] = ("wireguard", "openvpn")

_NODE_ID = re.compile(r"0x[0-9a-fA-F]{64}")


def normalize_node_id(value: str) -> str:
    """bytes32 as 0x + 64 hex digits, lower-cased; not all zero (NodeRegistry refuses it)."""
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise ValueError("a node id is the on-chain bytes32 as 0x followed by 64 hex digits")
    value = value.lower()
    if int(value, 16) == 0:
        raise ValueError("the zero node id is not a node")
    return value


def _endpoint(value: str) -> str:
    return canonical_endpoint(value)


def _country(value: str) -> str:
    return parse_country(value)


def _protocols(value: list[Protocol]) -> list[Protocol]:
    if len(set(value)) != len(value):
        raise ValueError("each protocol once")
    return [p for p in PROTOCOLS if p in value]  # one order: wireguard, openvpn


def _ipv4_pool(value: str) -> str:
    return str(parse_ipv4_pool(value))


def _ipv6_pool(value: str) -> str:
    return str(parse_ipv6_pool(value))


NodeId = Annotated[
    str,
    Field(
        min_length=66,
        max_length=66,
        pattern=NODE_ID,
        examples=["0x6e6f6465000000000000000000000000000000000000000000000000000000a1"],
    ),
    AfterValidator(normalize_node_id),
]
Endpoint = Annotated[
    str,
    Field(
        min_length=3,
        max_length=MAX_ENDPOINT_LENGTH,
        examples=["vpn.example.net:51820"],
        # Published for clients; the grammar module's validator (clearer messages) enforces it.
        json_schema_extra={"pattern": f"^{ENDPOINT_PATTERN}$"},
    ),
    AfterValidator(_endpoint),
]
Country = Annotated[
    str,
    Field(
        min_length=2, max_length=2, examples=["DE"], json_schema_extra={"pattern": "^[A-Za-z]{2}$"}
    ),
    AfterValidator(_country),
]
Protocols = Annotated[
    list[Protocol],
    Field(min_length=1, max_length=2, examples=[["wireguard", "openvpn"]]),
    AfterValidator(_protocols),
]
WireGuardPublicKey = Annotated[
    str,
    Field(
        min_length=44,
        max_length=44,
        pattern=WIREGUARD_KEY,
        examples=["xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="],
        description="Curve25519 public key, base64 (what `wg pubkey` prints)",
    ),
    AfterValidator(check_public_key),
]
Port = Annotated[int, Field(strict=True, ge=1, le=65535), WholeNumber]
IPv4Pool = Annotated[str, Field(max_length=18, pattern=IPV4_CIDR), AfterValidator(_ipv4_pool)]
IPv6Pool = Annotated[str, Field(max_length=43, pattern=IPV6_CIDR), AfterValidator(_ipv6_pool)]


def check_node_shape(
    protocols: Sequence[str],
    endpoint: str,
    wireguard_public_key: str | None,
    openvpn_port: int | None,
) -> None:
    """The rules across fields (raises ValueError): a WireGuard key iff WireGuard is served; two
    protocols need two ports."""
    serves_wireguard = "wireguard" in protocols
    if serves_wireguard and wireguard_public_key is None:
        raise ValueError("wireguard_public_key is required for a WireGuard node")
    if not serves_wireguard and wireguard_public_key is not None:
        raise ValueError("wireguard_public_key is only for nodes that serve WireGuard")
    if serves_wireguard and "openvpn" in protocols:
        port = openvpn_port_of(endpoint, protocols, openvpn_port)
        if port == parse_endpoint(endpoint)[1]:
            raise ValueError(
                "WireGuard (endpoint's port) and OpenVPN (openvpn_port, default 1194) need "
                "different UDP ports"
            )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_NODE_IN_EXAMPLE: dict[str, Any] = {
    "node_id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
    "protocols": ["wireguard", "openvpn"],
    "endpoint": "vpn.example.net:51820",
    "country": "DE",
    "wireguard_public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    "openvpn_port": 1194,
}


class NodeIn(_Strict):
    """Registers a node that is Active in NodeRegistry; the caller must be its operator."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": _NODE_IN_EXAMPLE})

    node_id: NodeId
    protocols: Protocols
    endpoint: Endpoint = Field(
        description="host:port clients connect to (WireGuard's port; OpenVPN uses the host)"
    )
    country: Country
    wireguard_public_key: WireGuardPublicKey | None = Field(
        default=None, description="required iff the node serves WireGuard"
    )
    openvpn_port: Port | None = Field(
        default=None,
        description="OpenVPN's UDP port on the endpoint's host; default: the endpoint's port "
        "for an OpenVPN-only node, else 1194",
    )
    ipv4_pool: IPv4Pool | None = Field(
        default=None,
        description="private IPv4 network for devices; default 10.x.0.0/16 from the node id "
        "(.0.1 is the node's own address)",
        examples=["10.8.0.0/16"],
    )
    ipv6_pool: IPv6Pool | None = Field(
        default=None,
        description="ULA IPv6 network for devices; default fdxx:xxxx:xxxx::/112 from the node "
        "id (::1 is the node's own address)",
        examples=["fd12:3456:789a::/112"],
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        check_node_shape(
            self.protocols, self.endpoint, self.wireguard_public_key, self.openvpn_port
        )
        return self


# PATCH fields that cannot be cleared: absent means unchanged, and null is refused, so the
# document does not offer null for them.
_PATCH_NOT_NULLABLE = ("endpoint", "country", "protocols")


def _patch_schema(schema: dict[str, Any]) -> None:
    schema["example"] = {"endpoint": "203.0.113.7:51820", "country": "NL"}
    for name in _PATCH_NOT_NULLABLE:
        field = schema["properties"][name]
        field.pop("default", None)
        alternatives = [s for s in field.pop("anyOf", []) if s.get("type") != "null"]
        if len(alternatives) == 1:
            field.update(alternatives[0])


class NodePatch(_Strict):
    """The fields to change (absent: unchanged). `endpoint`, `country` and `protocols` cannot
    be null. `wireguard_public_key: null` removes the key (only with WireGuard no longer among
    the protocols); `openvpn_port: null` goes back to the default port. Dropping a protocol
    revokes the node's live configs of that protocol."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    endpoint: Endpoint | None = None
    country: Country | None = None
    protocols: Protocols | None = None
    wireguard_public_key: WireGuardPublicKey | None = None
    openvpn_port: Port | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        for name in _PATCH_NOT_NULLABLE:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


_NODE_OUT_EXAMPLE: dict[str, Any] = {
    "id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
    "operator": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
    "protocols": ["wireguard", "openvpn"],
    "endpoint": "vpn.example.net:51820",
    "openvpn_port": 1194,
    "country": "DE",
    "wireguard_public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    "online": True,
    "last_heartbeat_at": "2026-05-01T12:00:00Z",
    "score": 0.873412,
    "score_epoch": 42,
    "created_at": "2026-04-01T09:30:00Z",
    "ipv4_pool": None,
    "ipv6_pool": None,
    "openvpn_ca_certificate": None,
}


class NodeOut(BaseModel):
    """A node's public fields. The operator (the caller whose wallet registered it) also gets its
    address pools and its OpenVPN CA certificate; for anyone else they are null."""

    model_config = ConfigDict(json_schema_extra={"example": _NODE_OUT_EXAMPLE})

    id: str = Field(pattern=NODE_ID)
    operator: str = Field(pattern=ADDRESS)
    protocols: list[Protocol]
    endpoint: str
    openvpn_port: int | None = Field(description="null unless the node serves OpenVPN")
    country: str
    wireguard_public_key: str | None = Field(pattern=WIREGUARD_KEY)
    online: bool = Field(description="a heartbeat arrived within the last 60 seconds")
    last_heartbeat_at: datetime | None
    score: float | None = Field(
        ge=0,
        le=1,
        description="the score in [0, 1] of the node's newest scored epoch (what that epoch's "
        "allocation used; details at GET /v1/nodes/{id}/scores); null: not scored yet",
    )
    score_epoch: int | None = Field(
        ge=1, description="the epoch `score` is from; null: not scored yet"
    )
    created_at: datetime
    ipv4_pool: str | None = Field(default=None, pattern=IPV4_CIDR, description="operator only")
    ipv6_pool: str | None = Field(default=None, pattern=IPV6_CIDR, description="operator only")
    openvpn_ca_certificate: str | None = Field(
        default=None, description="operator only (PEM); clients get it in their profile"
    )


class NodePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"items": [_NODE_OUT_EXAMPLE], "next_cursor": None}}
    )

    items: list[NodeOut]
    next_cursor: str | None = Field(
        pattern=CURSOR, description="pass as `cursor` for the next page; null: done"
    )
