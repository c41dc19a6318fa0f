"""What node agents send and receive. Every number is a strict, non-negative integer that fits
its column; every list is bounded; a WireGuard key is 32 bytes of canonical base64."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from control_plane.patterns import (
    CERT_SERIAL,
    INT32_MAX,
    INT64_MAX,
    IPV4_CIDR,
    IPV6_CIDR,
    NODE_ID_LOWER,
    TUNNEL_ADDRESS,
    WIREGUARD_KEY,
    WholeNumber,
)

MAX_METRIC_PEERS = 10_000
# A handshake reported further ahead of our clock than this is a broken clock, not a handshake.
MAX_CLOCK_SKEW = timedelta(minutes=10)

Count = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX), WholeNumber]
Counter = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX), WholeNumber]


def _wireguard_key(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    if len(raw) != 32 or base64.b64encode(raw).decode() != value:
        raise ValueError("a WireGuard key is 32 bytes in canonical base64 (44 characters)")
    return value


WireGuardKey = Annotated[
    str, Field(min_length=44, max_length=44, pattern=WIREGUARD_KEY), AfterValidator(_wireguard_key)
]
CertSerial = Annotated[str, Field(min_length=1, max_length=64, pattern=CERT_SERIAL)]
TunnelAddress = Annotated[str, Field(pattern=TUNNEL_ADDRESS)]


EARLIEST_HANDSHAKE = datetime(2015, 1, 1, tzinfo=UTC)  # before WireGuard existed: nonsense


def _not_in_future(value: datetime | None) -> datetime | None:
    if value is not None and value > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise ValueError("is in the future")
    if value is not None and value < EARLIEST_HANDSHAKE:
        raise ValueError("is before 2015")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- GET /v1/agent/peers -----------------------------------------------------------------------


class WireGuardPeer(BaseModel):
    protocol: Literal["wireguard"] = "wireguard"
    public_key: str = Field(pattern=WIREGUARD_KEY)
    allowed_ips: list[TunnelAddress] = Field(description='["<ipv4>/32", "<ipv6>/128"]')
    expires_at: datetime = Field(
        description="The subscriber's expiry (UTC): the agent removes the peer then by itself."
    )


class OpenVpnPeer(BaseModel):
    protocol: Literal["openvpn"] = "openvpn"
    cert_serial: str = Field(
        pattern=CERT_SERIAL, description="The client certificate's serial number."
    )
    allowed_ips: list[TunnelAddress] = Field(description='["<ipv4>/32", "<ipv6>/128"]')
    expires_at: datetime = Field(
        description="The subscriber's expiry (UTC): the agent removes the peer then by itself."
    )


Peer = Annotated[WireGuardPeer | OpenVpnPeer, Field(discriminator="protocol")]


class RemovedWireGuardPeer(BaseModel):
    protocol: Literal["wireguard"] = "wireguard"
    public_key: str = Field(pattern=WIREGUARD_KEY)


class RemovedOpenVpnPeer(BaseModel):
    protocol: Literal["openvpn"] = "openvpn"
    cert_serial: str = Field(pattern=CERT_SERIAL)


RemovedPeer = Annotated[RemovedWireGuardPeer | RemovedOpenVpnPeer, Field(discriminator="protocol")]


class PeerSet(BaseModel):
    """The node's desired peer set at `revision`, or, when nothing changed after `since`,
    `changed: false` and `peers: null` (keep the set you have: null never means "no peers").

    With `diff=true` a changed answer also carries `history`; if `since` and `history` were sent
    and the control plane still has every change after `since` in that history, the answer is a
    diff: `diff_since` is `since`, `peers` holds only the peers added or changed after it
    (replace yours with the same key or serial) and `removed` the ones to drop. Without
    `diff_since` the answer is the whole set. The three fields are absent unless `diff=true`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "revision": 42,
                    "changed": True,
                    "peers": [
                        {
                            "protocol": "wireguard",
                            "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                            "allowed_ips": ["10.8.0.2/32", "fd00:8::2/128"],
                            "expires_at": "2030-01-31T12:00:00Z",
                        },
                        {
                            "protocol": "openvpn",
                            "cert_serial": "5f3a9c0e11",
                            "allowed_ips": ["10.8.0.3/32", "fd00:8::3/128"],
                            "expires_at": "2030-02-28T12:00:00Z",
                        },
                    ],
                },
                {"revision": 42, "changed": False, "peers": None},
                {
                    "revision": 43,
                    "changed": True,
                    "history": "6f1c2b9e-3d4a-4c55-9a57-2f0e8d1b7c64",
                    "diff_since": 42,
                    "peers": [
                        {
                            "protocol": "wireguard",
                            "public_key": "k1c5Vb0V3lq7Yh0I6Jc8C4z0xWm7i2n8mB1bYVh2r3E=",
                            "allowed_ips": ["10.8.0.4/32", "fd00:8::4/128"],
                            "expires_at": "2030-03-31T12:00:00Z",
                        }
                    ],
                    "removed": [{"protocol": "openvpn", "cert_serial": "5f3a9c0e11"}],
                },
            ]
        }
    )

    revision: int = Field(
        ge=0, le=INT64_MAX, description="Monotonic per node; poll again with since=<revision>."
    )
    changed: bool = Field(description="False when the revision is still `since`.")
    peers: list[Peer] | None
    history: uuid.UUID | None = Field(
        default=None,
        description="With diff=true: the node's revision history; send it back with `since` to "
        "get a diff (a new history, after a change the log does not itemize, means a whole set).",
    )
    diff_since: int | None = Field(
        default=None,
        ge=0,
        le=INT64_MAX,
        description="Present when this answer is a diff against your set at this revision.",
    )
    removed: list[RemovedPeer] | None = Field(
        default=None, description="In a diff: the peers to remove (absent from the set now)."
    )

    @model_serializer(mode="wrap")
    def _without_absent_diff_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]  # noqa: ANN202 (unannotated: the schema stays the model's)
        """An agent that did not ask for diffs gets the old shape: the three fields only when
        set."""
        data = handler(self)
        for name in ("history", "diff_since", "removed"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


# --- POST /v1/agent/heartbeat ------------------------------------------------------------------


class HeartbeatIn(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "agent_version": "0.1.0",
                    "applied_revision": 42,
                    "active_peers": 17,
                    "rx_bytes_total": 123456789,
                    "tx_bytes_total": 987654321,
                }
            ]
        },
    )

    agent_version: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    applied_revision: Counter
    active_peers: Count
    rx_bytes_total: Counter
    tx_bytes_total: Counter


class HeartbeatOut(BaseModel):
    revision: int = Field(
        ge=0,
        le=INT64_MAX,
        description="The node's current revision: if yours is older, re-poll.",
    )


# --- GET /v1/agent/pools ----------------------------------------------------------------------


class NodePools(BaseModel):
    """The token's node and its device pools: `nodus-agent pools` stores them, and the agent
    refuses any peer whose address is outside them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "node_id": "0x" + "ab" * 32,
                    "ipv4_pool": "10.8.0.0/16",
                    "ipv6_pool": "fd00:8::/112",
                    "wireguard_ipv4_pool": "10.8.0.0/17",
                    "wireguard_ipv6_pool": "fd00:8::/113",
                    "openvpn_ipv4_pool": "10.8.128.0/17",
                    "openvpn_ipv6_pool": "fd00:8::8000/113",
                }
            ]
        }
    )

    node_id: str = Field(pattern=NODE_ID_LOWER)
    ipv4_pool: str = Field(pattern=IPV4_CIDR)
    ipv6_pool: str = Field(pattern=IPV6_CIDR)
    wireguard_ipv4_pool: str = Field(
        pattern=IPV4_CIDR, description="WireGuard's half (the lower) of ipv4_pool."
    )
    wireguard_ipv6_pool: str = Field(
        pattern=IPV6_CIDR, description="WireGuard's half of ipv6_pool."
    )
    openvpn_ipv4_pool: str = Field(
        pattern=IPV4_CIDR, description="OpenVPN's half (the upper) of ipv4_pool."
    )
    openvpn_ipv6_pool: str = Field(pattern=IPV6_CIDR, description="OpenVPN's half of ipv6_pool.")


# --- POST /v1/agent/metrics --------------------------------------------------------------------


class PeerMetricIn(_Strict):
    """One peer: `public_key` (WireGuard) or `cert_serial` (OpenVPN), exactly one. Byte counts
    are the interface's cumulative counters; `last_handshake_at` is null if none happened."""

    public_key: WireGuardKey | None = None
    cert_serial: CertSerial | None = None
    last_handshake_at: Annotated[AwareDatetime | None, AfterValidator(_not_in_future)] = None
    rx_bytes: Counter
    tx_bytes: Counter

    @model_validator(mode="after")
    def _one_identity(self) -> Self:
        if (self.public_key is None) == (self.cert_serial is None):
            raise ValueError("give exactly one of public_key (WireGuard) or cert_serial (OpenVPN)")
        return self


class MetricsIn(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "peers": [
                        {
                            "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                            "last_handshake_at": "2030-01-01T12:00:00Z",
                            "rx_bytes": 1048576,
                            "tx_bytes": 4194304,
                        }
                    ]
                }
            ]
        },
    )

    peers: list[PeerMetricIn] = Field(max_length=MAX_METRIC_PEERS)

    @model_validator(mode="after")
    def _each_peer_once(self) -> Self:
        identities = [(p.public_key, p.cert_serial) for p in self.peers]
        if len(set(identities)) != len(identities):
            raise ValueError("a peer appears more than once")
        return self


class MetricsOut(BaseModel):
    accepted: int = Field(description="Rows stored.")
    ignored: int = Field(
        description="Entries for peers that are not configs on this node (not stored)."
    )
