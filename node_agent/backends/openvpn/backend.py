"""The OpenVPN backend: one OpenVPN 2.6 server kept in step with the node's desired peer set.

What it does:
- writes the server configuration from the control plane's material (`GET /v1/agent/openvpn`:
  the node's CA, server certificate and key, tls-crypt key, CRL, port and pools), starts
  `openvpn` (optionally behind a command prefix such as `ip netns exec <ns>`), restarts it if it
  dies, and adopts a server it started before (an agent restart does not drop the clients);
- admits clients by certificate serial: `clients/<serial>.conf` holds each desired peer's fixed
  addresses (`ifconfig-push`, `ifconfig-ipv6-push`) and expiry. OpenVPN's own
  `client-config-dir` looks files up by common name, but the control plane names each
  certificate after its config id, which the peer feed does not carry; the feed's identity is
  the serial, as in the CRL. So a small client-connect script reads `tls_serial_hex_0`, refuses
  a serial without a file (or past its expiry, even if the agent is gone) and hands OpenVPN the
  file's directives;
- `apply(peers)` writes and removes only the files that differ; a removed (or expired) peer's
  live session is cut at once through the management socket (`client-kill <cid> HALT`: the
  client exits instead of retrying) and the CRL is refreshed so its certificate is refused at the
  TLS handshake;
- keeps the CRL fresh: re-fetched hourly, after every removal, and once half its lifetime has
  passed, with backoff and jitter on failure; it gets loud (warning, then error, then critical)
  as nextUpdate nears, because OpenVPN refuses every client once the CRL has expired. A CRL is
  checked (signed by the node's CA, not expired, not older than the one in place) before it
  replaces the file, atomically; OpenVPN re-reads it on every new TLS session;
- `stats()` reads the status file (`CLIENT_LIST` bytes and connected-since, `ROUTING_TABLE` last
  activity) and maps sessions to serials by their pushed address.

The backend never imports the control plane: it speaks the HTTP contract only (see
`HttpMaterialSource`, or pass any `MaterialSource`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import random
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from node_agent.backends import PeerStats
from node_agent.backends.openvpn_templates import CLIENT_CONNECT_SCRIPT, SERVER_CONFIG
from node_agent.peers import OpenVpnPeer, Peer

if TYPE_CHECKING:
    from node_agent.config import AgentConfig

log = logging.getLogger("nodus.agent.openvpn")

MATERIAL_PATH = "/v1/agent/openvpn"
_SERIAL = re.compile(r"^[0-9a-f]{1,64}$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@=:-]+$")
_DEVICE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_STATIC_KEY = "-----BEGIN OpenVPN Static key V1-----"
_EXPIRES_LINE = "# nodus-expires-at: "
_SERIAL_LINE = "# nodus-peer: "
KILL_MEMORY_SECONDS = 10.0  # a killed session lingers in the status for OpenVPN's 5 s exit delay
MAX_UNIX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class InvalidMaterial(ValueError):
    """The control plane's OpenVPN material failed a check; the last good material stays."""


class MaterialUnavailable(Exception):
    """The material could not be fetched (control plane unreachable, refused, timed out)."""


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- Material --------------------------------------------------------------------------------


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
    if not _SERIAL.match(text):
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
# A node token for the control plane; `renew=True` after a 401 (sign in again).
TokenProvider = Callable[[bool], Awaitable[str]]


class HttpMaterialSource:
    """Fetches `GET /v1/agent/openvpn` with the node's token. `http` carries the base URL and
    timeouts; retries are the backend's (it backs off with jitter and keeps the last good
    material)."""

    def __init__(self, http: httpx.AsyncClient, token: TokenProvider) -> None:
        self._http = http
        self._token = token

    async def __call__(self) -> OpenVpnMaterial:
        try:
            response = await self._get(renew=False)
            if response.status_code == 401:  # the token expired or was revoked: once more
                response = await self._get(renew=True)
        except httpx.HTTPError as exc:
            raise MaterialUnavailable(f"GET {MATERIAL_PATH}: {exc!r}") from exc
        if response.status_code == 404:
            raise MaterialUnavailable(
                f"GET {MATERIAL_PATH}: 404, the control plane says this node does not serve "
                "OpenVPN (is it registered with protocols including openvpn?)"
            )
        if response.status_code != 200:
            raise MaterialUnavailable(
                f"GET {MATERIAL_PATH}: HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise InvalidMaterial("the answer is not JSON") from exc
        if not isinstance(payload, dict):
            raise InvalidMaterial("the answer is not a JSON object")
        return OpenVpnMaterial.from_json(payload)

    async def _get(self, *, renew: bool) -> httpx.Response:
        token = await self._token(renew)
        return await self._http.get(MATERIAL_PATH, headers={"authorization": f"Bearer {token}"})


class LoginRefused(MaterialUnavailable):
    pass


LOGIN_ATTEMPTS = 3


class AgentLogin:
    """A node token, by signing the control plane's challenge with the agent key
    (`POST /v1/agent/challenge`, then `POST /v1/agent/login`), kept until a fifth of its
    lifetime is left. Errors surface as MaterialUnavailable (the backend backs off)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        node_id: str,
        account: Callable[[], LocalAccount],
    ) -> None:
        self._http = http
        self._node_id = node_id
        self._account = account
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self, renew: bool = False) -> str:
        async with self._lock:
            if renew or self._token is None or time.monotonic() >= self._renew_at:
                await self._login()
            assert self._token is not None
            return self._token

    async def _login(self) -> None:
        """Signs in; a refused login is tried again twice with a fresh challenge (the node's
        open challenge is single-use: another sign-in of this node may have just taken it)."""
        self._token = None
        for attempt in range(LOGIN_ATTEMPTS):
            try:
                await self._login_once()
                return
            except LoginRefused:
                if attempt + 1 == LOGIN_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.2, 1.0))  # noqa: S311 (jitter)

    async def _login_once(self) -> None:
        try:
            response = await self._http.post("/v1/agent/challenge", json={"node_id": self._node_id})
            text = response.json().get("challenge") if response.status_code == 200 else None
            if not isinstance(text, str) or self._node_id not in text:
                raise MaterialUnavailable(f"agent challenge: HTTP {response.status_code}")
            account = self._account()
            signature = account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()
            response = await self._http.post(
                "/v1/agent/login", json={"node_id": self._node_id, "signature": signature}
            )
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise MaterialUnavailable(f"agent login: {exc!r}") from exc
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(expires_in, int) or expires_in <= 0:
            raise LoginRefused(f"agent login refused: HTTP {response.status_code}")
        self._token = token
        self._renew_at = time.monotonic() + expires_in - min(60.0, expires_in / 5)


# --- CRL freshness -----------------------------------------------------------------------------


class CrlLevel(IntEnum):
    OK = 0
    WARNING = 1  # within `warn_before` of nextUpdate
    CRITICAL = 2  # within `critical_before`: every client is about to be locked out
    EXPIRED = 3  # OpenVPN refuses every client now
    MISSING = 4  # no CRL yet: the server cannot start


@dataclass(frozen=True, slots=True)
class CrlPolicy:
    """When to re-fetch the CRL and when to shout. The control plane signs CRLs valid 7 days;
    the warning thresholds shrink for shorter-lived CRLs (to 30% and 10% of the lifetime)."""

    refresh_interval: timedelta = timedelta(hours=1)
    refresh_fraction: float = 0.5  # also re-fetch once this share of its lifetime has passed
    min_refetch: timedelta = timedelta(minutes=1)  # never sooner after a success
    warn_before: timedelta = timedelta(days=2)
    critical_before: timedelta = timedelta(hours=12)
    retry_min: timedelta = timedelta(seconds=5)
    retry_max: timedelta = timedelta(minutes=5)
    retry_max_critical: timedelta = timedelta(seconds=30)  # retry harder when it is close


@dataclass(frozen=True, slots=True)
class CrlDecision:
    level: CrlLevel
    refresh_due: bool
    remaining: timedelta | None  # until nextUpdate (negative once expired)


def crl_decision(
    policy: CrlPolicy,
    now: datetime,
    crl: CrlInfo | None,
    fetched_at: datetime | None,
    retry_at: datetime | None,
) -> CrlDecision:
    """Whether to fetch a fresh CRL now, and how worried to be. `fetched_at` is the last
    successful fetch; `retry_at` is set while backing off after failures (no fetch before it).
    A CRL is re-fetched every `refresh_interval`, and once `refresh_fraction` of its lifetime
    has passed (at most every `min_refetch`), so it never comes near its nextUpdate while the
    control plane answers."""
    if crl is None:
        return CrlDecision(CrlLevel.MISSING, retry_at is None or now >= retry_at, None)
    remaining = crl.next_update - now
    lifetime = crl.next_update - crl.last_update
    if remaining <= timedelta(0):
        level = CrlLevel.EXPIRED
    elif remaining <= min(policy.critical_before, lifetime * 0.1):
        level = CrlLevel.CRITICAL
    elif remaining <= min(policy.warn_before, lifetime * 0.3):
        level = CrlLevel.WARNING
    else:
        level = CrlLevel.OK
    if retry_at is not None:
        return CrlDecision(level, now >= retry_at, remaining)
    if fetched_at is None:
        return CrlDecision(level, True, remaining)
    since = now - fetched_at
    aged = now >= crl.last_update + lifetime * policy.refresh_fraction
    due = since >= policy.refresh_interval or (aged and since >= policy.min_refetch)
    return CrlDecision(level, due, remaining)


def retry_delay(policy: CrlPolicy, failures: int, level: CrlLevel) -> timedelta:
    """Exponential backoff after `failures` failed fetches in a row (before jitter); capped
    lower when the CRL is close to expiring, or missing."""
    cap = policy.retry_max_critical if level >= CrlLevel.CRITICAL else policy.retry_max
    exponent = min(max(failures - 1, 0), 20)
    return min(policy.retry_min * (1 << exponent), cap)


# --- Client entries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientEntry:
    """One admitted client: `clients/<serial>.conf`."""

    serial: str
    ipv4: ipaddress.IPv4Address
    ipv4_netmask: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Interface  # address with the pool's prefix length
    ipv6_gateway: ipaddress.IPv6Address
    expires_at: int  # unix seconds

    @property
    def addresses(self) -> tuple[str, str]:
        return str(self.ipv4), str(self.ipv6.ip)

    def same_addresses(self, other: ClientEntry) -> bool:
        return (self.ipv4, self.ipv4_netmask, self.ipv6, self.ipv6_gateway) == (
            other.ipv4,
            other.ipv4_netmask,
            other.ipv6,
            other.ipv6_gateway,
        )


def render_client_entry(entry: ClientEntry) -> str:
    return (
        f"{_SERIAL_LINE}{entry.serial}\n"
        f"{_EXPIRES_LINE}{entry.expires_at}\n"
        f"ifconfig-push {entry.ipv4} {entry.ipv4_netmask}\n"
        f"ifconfig-ipv6-push {entry.ipv6} {entry.ipv6_gateway}\n"
    )


def parse_client_entry(serial: str, text: str) -> ClientEntry | None:
    """The entry a file holds, or None if it is not one this backend wrote."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(_EXPIRES_LINE):
            values["expires"] = line.removeprefix(_EXPIRES_LINE).strip()
        elif line.startswith(("ifconfig-push ", "ifconfig-ipv6-push ")):
            name, _, rest = line.partition(" ")
            values[name] = rest.strip()
    try:
        ipv4, netmask = values["ifconfig-push"].split()
        ipv6, gateway = values["ifconfig-ipv6-push"].split()
        return ClientEntry(
            serial=serial,
            ipv4=ipaddress.IPv4Address(ipv4),
            ipv4_netmask=ipaddress.IPv4Address(netmask),
            ipv6=ipaddress.IPv6Interface(ipv6),
            ipv6_gateway=ipaddress.IPv6Address(gateway),
            expires_at=int(values["expires"]),
        )
    except (KeyError, ValueError):
        return None


def _host_in(pool: ipaddress.IPv4Network | ipaddress.IPv6Network, text: str) -> str:
    """The host address of `text` (`a.b.c.d/32` or `x::y/128`) if it is a client address of
    `pool` (not the network, the server's host 1, or the IPv4 broadcast). Raises ValueError."""
    interface = ipaddress.ip_interface(text)
    if interface.network.prefixlen != interface.max_prefixlen:
        raise ValueError(f"{text} is not a single address")
    address = interface.ip
    if address.version != pool.version or address not in pool:
        raise ValueError(f"{text} is outside the node's pool {pool}")
    offset = int(address) - int(pool.network_address)
    if offset < 2 or (pool.version == 4 and address == pool.broadcast_address):
        raise ValueError(f"{text} is reserved in the pool {pool}")
    return str(address)


def entry_for(peer: OpenVpnPeer, material: OpenVpnMaterial) -> ClientEntry:
    """The client entry for a peer of the feed. Raises ValueError for a bad serial, or
    addresses that are not one IPv4 and at most one IPv6 client address of the node's pools."""
    serial = normalize_serial(peer.cert_serial)
    ipv4s = [ip for ip in peer.allowed_ips if ipaddress.ip_interface(ip).version == 4]
    ipv6s = [ip for ip in peer.allowed_ips if ipaddress.ip_interface(ip).version == 6]
    if len(ipv4s) != 1 or len(ipv6s) > 1:
        raise ValueError(f"allowed_ips: want one IPv4 and at most one IPv6: {peer.allowed_ips}")
    ipv4 = ipaddress.IPv4Address(_host_in(material.ipv4_pool, ipv4s[0]))
    if ipv6s:
        ipv6 = ipaddress.IPv6Address(_host_in(material.ipv6_pool, ipv6s[0]))
    else:  # the control plane always sends both; host i of the IPv4 pool is host i of the v6 one
        ipv6 = material.ipv6_pool.network_address + (
            int(ipv4) - int(material.ipv4_pool.network_address)
        )
    expires = peer.expires_at
    if expires.tzinfo is None:
        raise ValueError("expires_at: a naive time")
    return ClientEntry(
        serial=serial,
        ipv4=ipv4,
        ipv4_netmask=material.ipv4_pool.netmask,
        ipv6=ipaddress.IPv6Interface(f"{ipv6}/{material.ipv6_pool.prefixlen}"),
        ipv6_gateway=material.server_ipv6,
        expires_at=int(expires.timestamp()),
    )


def desired_entries(
    peers: Iterable[OpenVpnPeer],
    material: OpenVpnMaterial,
    now: datetime,
    revoked: frozenset[str] = frozenset(),
) -> tuple[dict[str, ClientEntry], list[str]]:
    """The entries to have on disk: valid peers that have not expired and are not in the CRL,
    each address held once (a later claimant of an address is refused). Also the reasons
    peers were refused (for the log; they are never applied)."""
    wanted: dict[str, ClientEntry] = {}
    holders: dict[str, str] = {}
    refused: list[str] = []
    cutoff = int(now.timestamp())
    for peer in peers:
        try:
            entry = entry_for(peer, material)
        except ValueError as exc:
            refused.append(f"peer {peer.cert_serial[:64]!r} refused: {exc}")
            continue
        if entry.expires_at <= cutoff or entry.serial in revoked:
            continue
        if entry.serial in wanted:
            refused.append(f"peer {entry.serial} refused: listed twice")
            continue
        clash = next((holders[a] for a in entry.addresses if a in holders), None)
        if clash is not None:
            refused.append(f"peer {entry.serial} refused: its address is {clash}'s")
            continue
        wanted[entry.serial] = entry
        holders.update(dict.fromkeys(entry.addresses, entry.serial))
    return wanted, refused


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """The difference between the entries on disk and the wanted ones."""

    write: dict[str, ClientEntry]  # new files, and files whose content changes
    remove: frozenset[str]  # files to delete
    cut: frozenset[str]  # removed serials: their sessions end (HALT)
    reconnect: frozenset[str]  # serials whose addresses moved: they reconnect (RESTART)

    @property
    def empty(self) -> bool:
        return not (self.write or self.remove)


def plan_clients(
    current: Mapping[str, ClientEntry], wanted: Mapping[str, ClientEntry]
) -> ClientPlan:
    removed = frozenset(current.keys() - wanted.keys())
    write = {s: e for s, e in wanted.items() if current.get(s) != e}
    moved = frozenset(s for s in write if s in current and not current[s].same_addresses(write[s]))
    return ClientPlan(write=write, remove=removed, cut=removed, reconnect=moved)


# --- Status ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectedClient:
    """One `CLIENT_LIST` row (with its `ROUTING_TABLE` last activity, if any)."""

    common_name: str
    real_address: str
    virtual_address: str | None
    virtual_ipv6: str | None
    bytes_received: int
    bytes_sent: int
    connected_since: int
    client_id: int | None
    last_ref: int | None = None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    time: int | None
    clients: tuple[ConnectedClient, ...]
    complete: bool  # the END line was there (OpenVPN rewrites the file in place)


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def parse_status(text: str) -> StatusSnapshot:
    """OpenVPN's status (`status-version` 2 or 3, from the file or the management socket's
    `status 3`). Columns are found by the `HEADER` lines, so their order may change."""
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    headers: dict[str, list[str]] = {}
    rows: list[dict[str, str]] = []
    last_refs: dict[str, int] = {}
    when: int | None = None
    complete = False
    for raw in text.splitlines():
        parts = raw.split(delimiter)
        kind = parts[0]
        if kind == "HEADER" and len(parts) > 2:
            headers[parts[1]] = parts[2:]
        elif kind == "TIME" and len(parts) >= 3:
            when = _int(parts[2])
        elif kind == "END":
            complete = True
        elif kind == "CLIENT_LIST" and "CLIENT_LIST" in headers:
            rows.append(dict(zip(headers["CLIENT_LIST"], parts[1:], strict=False)))
        elif kind == "ROUTING_TABLE" and "ROUTING_TABLE" in headers:
            route = dict(zip(headers["ROUTING_TABLE"], parts[1:], strict=False))
            ref = _int(route.get("Last Ref (time_t)"))
            address = route.get("Virtual Address", "")
            if ref is not None and address:
                last_refs[address] = max(ref, last_refs.get(address, 0))
    clients = []
    for row in rows:
        v4 = row.get("Virtual Address") or None
        v6 = row.get("Virtual IPv6 Address") or None
        refs = [last_refs[a] for a in (v4, v6) if a is not None and a in last_refs]
        clients.append(
            ConnectedClient(
                common_name=row.get("Common Name", ""),
                real_address=row.get("Real Address", ""),
                virtual_address=v4,
                virtual_ipv6=v6,
                bytes_received=_int(row.get("Bytes Received")) or 0,
                bytes_sent=_int(row.get("Bytes Sent")) or 0,
                connected_since=_int(row.get("Connected Since (time_t)")) or 0,
                client_id=_int(row.get("Client ID")),
                last_ref=max(refs) if refs else None,
            )
        )
    return StatusSnapshot(time=when, clients=tuple(clients), complete=complete)


def serial_of(client: ConnectedClient, by_address: Mapping[str, str]) -> str | None:
    """The serial whose entry pushed this session's address (None: not one of ours)."""
    for address in (client.virtual_address, client.virtual_ipv6):
        if address is not None and address in by_address:
            return by_address[address]
    return None


def address_index(entries: Mapping[str, ClientEntry]) -> dict[str, str]:
    return {address: s for s, e in entries.items() for address in e.addresses}


def stats_from(snapshot: StatusSnapshot, entries: Mapping[str, ClientEntry]) -> list[PeerStats]:
    """Per serial: the byte counters the server saw (received = from the client) and the latest
    sign of life (connected since, or the last packet routed to/from it)."""
    by_address = address_index(entries)
    merged: dict[str, PeerStats] = {}
    for client in snapshot.clients:
        serial = serial_of(client, by_address)
        if serial is None:
            continue
        seen = max(client.connected_since, client.last_ref or 0) or None
        previous = merged.get(serial)
        if previous is not None:  # two sessions of one certificate: add them up
            last = max(previous.last_handshake_at or 0, seen or 0) or None
            merged[serial] = PeerStats(
                serial,
                last,
                previous.rx_bytes + client.bytes_received,
                previous.tx_bytes + client.bytes_sent,
            )
        else:
            merged[serial] = PeerStats(
                serial, float(seen) if seen else None, client.bytes_received, client.bytes_sent
            )
    return sorted(merged.values(), key=lambda s: s.key)


# --- Management interface ----------------------------------------------------------------------


class ManagementError(Exception):
    pass


class ManagementSession:
    """One connection to OpenVPN's management socket (it serves one client at a time: keep
    sessions short). Real-time notifications (`>...` lines) are skipped."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(str(self._path))
                greeting = await self._line()
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"management socket {self._path}: {exc!r}") from exc
        if not greeting.startswith(">INFO:"):
            raise ManagementError(f"management socket: unexpected greeting {greeting[:80]!r}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                self._writer.write(b"quit\n")
                await self._writer.drain()
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()

    async def _line(self) -> str:
        assert self._reader is not None
        raw = await self._reader.readline()
        if not raw:
            raise ManagementError("management socket closed")
        return raw.decode(errors="replace").rstrip("\r\n")

    async def _send(self, command: str) -> None:
        assert self._writer is not None
        if "\n" in command or "\r" in command:
            raise ValueError("one command, one line")
        self._writer.write(command.encode() + b"\n")
        await self._writer.drain()

    async def command(self, command: str) -> str:
        """A one-line command; its `SUCCESS:` text (ManagementError on `ERROR:`)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._send(command)
                while True:
                    line = await self._line()
                    if line.startswith("SUCCESS:"):
                        return line.removeprefix("SUCCESS:").strip()
                    if line.startswith("ERROR:"):
                        raise ManagementError(f"{command.split()[0]}: {line}")
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"{command.split()[0]}: {exc!r}") from exc

    async def status(self) -> StatusSnapshot:
        try:
            async with asyncio.timeout(self._timeout):
                await self._send("status 3")
                lines: list[str] = []
                while True:
                    line = await self._line()
                    if line.startswith(">"):
                        continue
                    if line.startswith("ERROR:"):
                        raise ManagementError(f"status: {line}")
                    lines.append(line)
                    if line == "END":
                        return parse_status("\n".join(lines))
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"status: {exc!r}") from exc

    async def state(self) -> str | None:
        """The server's state word from `state` (CONNECTED once it is initialized)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._send("state")
                found: str | None = None
                while True:
                    line = await self._line()
                    if line.startswith(">"):
                        continue
                    if line == "END" or line.startswith("ERROR:"):
                        return found
                    parts = line.split(",")
                    if found is None and len(parts) > 1 and parts[0].isdigit():
                        found = parts[1]
        except (OSError, TimeoutError) as exc:
            raise ManagementError(f"state: {exc!r}") from exc

    async def kill(self, client_id: int, message: str = "HALT") -> None:
        """`client-kill`: HALT makes the client exit; RESTART makes it reconnect."""
        await self.command(f"client-kill {int(client_id)} {message}")


# --- Settings ----------------------------------------------------------------------------------


def _safe_path(path: Path, what: str) -> Path:
    resolved = path.absolute()
    if not _SAFE_PATH.match(str(resolved)):
        raise ValueError(f"{what}: {resolved} must hold only letters, digits and ._/+@=:-")
    return resolved


@dataclass(frozen=True, slots=True)
class OpenVpnSettings:
    """How the node runs OpenVPN. Every path lives under `state_dir` (0700)."""

    state_dir: Path
    openvpn_binary: str = "openvpn"
    # Run the server behind this prefix, e.g. ("ip", "netns", "exec", "node") (tests, or a
    # dedicated namespace). The prefix must exec openvpn (so its PID is the server's).
    command_prefix: tuple[str, ...] = ()
    device: str = "nodus-ovpn0"  # the tun interface (at most 15 characters)
    proto: str = "udp"  # udp (dual stack), udp4, udp6, tcp-server
    listen: str | None = None  # `local`: the address to bind (default: all)
    # Pushed to every client. DNS servers are the operator's choice (add "dhcp-option DNS x").
    push: tuple[str, ...] = ("redirect-gateway def1 ipv6",)
    extra_directives: tuple[str, ...] = ()  # appended verbatim (one directive each)
    keepalive: tuple[int, int] = (10, 60)
    status_interval_seconds: int = 5
    verb: int = 3
    crl_policy: CrlPolicy = field(default_factory=CrlPolicy)
    maintenance_interval_seconds: float = 2.0  # expiry, liveness, CRL checks
    reconcile_interval_seconds: float = 10.0  # sessions without an entry are cut
    material_timeout_seconds: float = 15.0
    management_timeout_seconds: float = 5.0
    restart_backoff_max_seconds: float = 30.0
    stop_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        _safe_path(self.state_dir, "state_dir")
        socket = Paths.under(self.state_dir).management
        if len(str(socket).encode()) > MAX_UNIX_SOCKET_PATH:
            raise ValueError(
                f"state_dir: too long for the management socket {socket} (a unix socket path "
                f"has at most {MAX_UNIX_SOCKET_PATH} bytes)"
            )
        if not _DEVICE.match(self.device):
            raise ValueError("device: 1-15 letters, digits, '_', '-' or '.'")
        if self.proto not in ("udp", "udp4", "udp6", "tcp-server", "tcp4-server", "tcp6-server"):
            raise ValueError(f"proto: {self.proto!r} is not a server protocol")
        if self.listen is not None:
            ipaddress.ip_address(self.listen)
        for line in (*self.push, *self.extra_directives):
            if "\n" in line or "\r" in line:
                raise ValueError(f"one directive per entry: {line!r}")
        for option in self.push:
            if '"' in option:
                raise ValueError(f"push: no double quotes: {option!r}")


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> Paths:
        return cls(_safe_path(state_dir, "state_dir"))

    @property
    def config(self) -> Path:
        return self.root / "server.conf"

    @property
    def material(self) -> Path:
        return self.root / "material.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.pki / "server.crt"

    @property
    def key(self) -> Path:
        return self.pki / "server.key"

    @property
    def tls_crypt(self) -> Path:
        return self.pki / "tls-crypt.key"

    @property
    def crl(self) -> Path:
        return self.pki / "crl.pem"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    @property
    def client_connect(self) -> Path:
        return self.root / "client-connect.sh"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def management(self) -> Path:
        return self.run / "management.sock"

    @property
    def status(self) -> Path:
        return self.run / "status.log"

    @property
    def pid(self) -> Path:
        return self.run / "openvpn.pid"

    @property
    def config_digest(self) -> Path:
        """sha256 of the configuration the running server was started with."""
        return self.run / "server.conf.sha256"

    @property
    def log(self) -> Path:
        return self.root / "openvpn.log"


def render_server_config(settings: OpenVpnSettings, material: OpenVpnMaterial, paths: Paths) -> str:
    """The server configuration for `material` (see openvpn_templates.SERVER_CONFIG)."""
    udp = settings.proto.startswith("udp")
    return SERVER_CONFIG.substitute(
        port=material.port,
        proto=settings.proto,
        local_line=f"local {settings.listen}" if settings.listen else "",
        device=settings.device,
        ipv4_network=material.ipv4_pool.network_address,
        ipv4_netmask=material.ipv4_pool.netmask,
        ipv6_pool=material.ipv6_pool,
        ca=paths.ca,
        cert=paths.cert,
        key=paths.key,
        tls_crypt=paths.tls_crypt,
        crl=paths.crl,
        client_connect=paths.client_connect,
        clients_dir=paths.clients,
        keepalive_interval=settings.keepalive[0],
        keepalive_timeout=settings.keepalive[1],
        exit_notify_line="explicit-exit-notify 1" if udp else "",
        management=paths.management,
        status=paths.status,
        status_interval=settings.status_interval_seconds,
        pid_file=paths.pid,
        verb=settings.verb,
        push_lines="\n".join(f'push "{option}"' for option in settings.push),
        extra_lines="\n".join(settings.extra_directives),
    )


def _write_atomic(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    """Replaces `path` with `content` in one rename (a reader never sees half a file)."""
    data = content.encode() if isinstance(content, str) else content
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(partial, mode)
    partial.replace(path)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


# --- The server process ------------------------------------------------------------------------


class _Server:
    """The running `openvpn`: a child of ours (a plain Popen, which, unlike an asyncio
    subprocess, is not killed when the agent goes away) or one adopted from an earlier run."""

    def __init__(self, pid: int, process: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self.process = process

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return _pid_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if await self._wait(grace):
            return
        log.warning("openvpn (pid %d) ignored SIGTERM for %.0fs: killing it", self.pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        await self._wait(grace)

    async def _wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.alive():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _read(Path(f"/proc/{pid}/stat"))
    return stat is None or ") Z " not in stat  # a zombie is gone


def _running_server(paths: Paths, config: str) -> int | None:
    """The PID of an `openvpn` started by an earlier run of the agent (its pid file) that
    still serves exactly `config`; an older one is stopped. None if there is none to adopt."""
    text = _read(paths.pid)
    if text is None or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if str(paths.config).encode() not in cmdline or not _pid_alive(pid):
        return None
    if _read(paths.config_digest) == _digest(config):
        return pid
    log.warning("an OpenVPN server (pid %d) runs an older configuration: replacing it", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    return None


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Starts the server in its own session with output appended to `log_path`. A plain Popen
    (fork and exec: quick), so it outlives the agent: clients stay connected."""
    with log_path.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 (the operator's binary and prefix, our config)
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _is_our_server(pid: int, paths: Paths) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(paths.config).encode() in cmdline


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- The backend -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenVpnHealth:
    """For `nodus-agent status` and heartbeats."""

    server_running: bool
    server_pid: int | None
    clients: int  # entries on disk (admitted serials)
    crl_level: CrlLevel
    crl_next_update: datetime | None
    material_fetched_at: datetime | None
    last_error: str | None


class OpenVpnBackend:
    """A `VpnBackend` for OpenVPN (see the module's docstring). The first `apply` or `stats`
    starts it (or call `start()`, or use `async with`); `apply` and `stats` are safe to call
    concurrently with each other and with the maintenance loop."""

    def __init__(
        self,
        settings: OpenVpnSettings,
        material_source: MaterialSource,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.paths = Paths.under(settings.state_dir)
        self._source = material_source
        self._clock = clock
        self._lock = asyncio.Lock()  # the files, the entries and the server
        self._fetch_lock = asyncio.Lock()  # one material fetch at a time
        self._material: OpenVpnMaterial | None = None
        self._crl: CrlInfo | None = None
        self._fetched_at: datetime | None = None
        self._failures = 0
        self._retry_at: datetime | None = None
        self._desired: dict[str, OpenVpnPeer] | None = None  # None: none applied since start
        self._entries: dict[str, ClientEntry] = {}
        self._server: _Server | None = None
        self._server_failures = 0
        self._restart_at = 0.0  # monotonic
        self._last_reconcile = 0.0
        self._last_loud: tuple[CrlLevel, float] = (CrlLevel.OK, 0.0)
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._killed: dict[int, float] = {}  # client id -> monotonic time of its client-kill

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, run_maintenance: bool = True) -> None:
        """Prepares the state directory, loads the last good material (if any), fetches fresh
        material (if the control plane answers), starts or adopts the server, and starts the
        maintenance loop (unless `run_maintenance` is False: then the caller calls `maintain()`
        every few seconds). Returns even if the control plane is unreachable: the loop keeps
        trying, and a node with material on disk serves meanwhile (fail-static). `apply` and
        `stats` call it if nobody did."""
        if self._started:
            return
        self._started = True
        for directory in (self.paths.root, self.paths.pki, self.paths.clients, self.paths.run):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        _write_atomic(self.paths.client_connect, CLIENT_CONNECT_SCRIPT, 0o700)
        async with self._lock:
            self._entries = self._load_entries()
            self._load_saved_material()
            if self._material is not None:  # serve what we had at once (fail-static)
                await self._sync_locked()
                await self._ensure_server_locked()
        await self._refresh("start")
        async with self._lock:
            if self._material is not None:
                await self._sync_locked()
                await self._ensure_server_locked()
        if run_maintenance:
            self._task = asyncio.create_task(self._maintain_forever(), name="nodus-openvpn")

    async def stop(self, *, keep_server: bool = False) -> None:
        """Stops the maintenance loop and (unless `keep_server`) the OpenVPN server. A kept
        server goes on serving the last applied set; the next start adopts it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._started = False
        async with self._lock:
            if self._server is not None and not keep_server:
                await self._server.stop(self.settings.stop_timeout_seconds)
                self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- VpnBackend --------------------------------------------------------------------------

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        """Makes the admitted clients exactly the OpenVPN peers in `peers` (others are ignored):
        writes and removes only the entries that differ, cuts the sessions of removed peers at
        once, and then fetches a fresh CRL (which lists the revoked certificates)."""
        desired: dict[str, OpenVpnPeer] = {}
        for peer in peers:
            if not isinstance(peer, OpenVpnPeer):
                continue
            try:
                serial = normalize_serial(peer.cert_serial)
            except ValueError as exc:
                log.error("peer refused (never applied): %s", exc)
                continue
            desired.setdefault(serial, peer)
        await self.start()
        async with self._lock:
            self._desired = desired
            removed = await self._sync_locked()
        if removed:  # the CRL now lists the revoked certificates
            await self._refresh(f"{len(removed)} peer(s) removed")

    async def stats(self) -> list[PeerStats]:
        """Per admitted serial: bytes received from / sent to the client and the latest sign of
        life, from the status file (or, if that is stale or half-written, the management
        socket). Empty while the server is down."""
        await self.start()
        if self._server is None or not self._server.alive():
            return []
        snapshot = self._status_file()
        if snapshot is None:
            try:
                async with self._management() as management:
                    snapshot = await management.status()
            except ManagementError as exc:
                log.warning("no OpenVPN status: %s", exc)
                return []
        return stats_from(snapshot, self._entries)

    # --- extras ------------------------------------------------------------------------------

    def health(self) -> OpenVpnHealth:
        decision = crl_decision(
            self.settings.crl_policy, self._clock(), self._crl, self._fetched_at, self._retry_at
        )
        return OpenVpnHealth(
            server_running=self._server is not None and self._server.alive(),
            server_pid=self._server.pid if self._server is not None else None,
            clients=len(self._entries),
            crl_level=decision.level,
            crl_next_update=self._crl.next_update if self._crl is not None else None,
            material_fetched_at=self._fetched_at,
            last_error=self._last_error,
        )

    def set_material_source(self, source: MaterialSource) -> None:
        """Fetches material from `source` from now on (e.g. through the agent's own
        control-plane client once it exists, so the node signs in once)."""
        self._source = source

    async def refresh_material(self, reason: str = "requested") -> bool:
        """Fetches and installs fresh material (and CRL) now; False if that failed."""
        return await self._refresh(reason)

    async def wait_ready(self, seconds: float = 20.0) -> None:
        """Returns once the server answers on its management socket with state CONNECTED
        (initialized, listening). TimeoutError after `seconds`."""
        async with asyncio.timeout(seconds):
            while True:
                if self._server is not None and self._server.alive():
                    try:
                        async with self._management() as management:
                            state = await management.state()
                        if state == "CONNECTED":
                            return
                    except ManagementError:
                        pass
                await asyncio.sleep(0.1)

    async def maintain(self) -> None:
        """One maintenance pass: CRL freshness, expired peers, server liveness, and (every
        `reconcile_interval_seconds`) sessions that no entry admits."""
        now = self._clock()
        policy = self.settings.crl_policy
        decision = crl_decision(policy, now, self._crl, self._fetched_at, self._retry_at)
        if decision.refresh_due:
            await self._refresh("scheduled")
            decision = crl_decision(policy, now, self._crl, self._fetched_at, self._retry_at)
        self._shout(decision)
        async with self._lock:
            cutoff = int(now.timestamp())
            if self._material is not None and any(
                e.expires_at <= cutoff for e in self._entries.values()
            ):
                await self._sync_locked()
            await self._ensure_server_locked()
            if time.monotonic() - self._last_reconcile >= self.settings.reconcile_interval_seconds:
                self._last_reconcile = time.monotonic()
                await self._reconcile_locked()

    # --- internals ---------------------------------------------------------------------------

    async def _maintain_forever(self) -> None:
        while True:
            try:
                await self.maintain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving: log and try again next pass
                self._last_error = f"maintenance: {exc!r}"
                log.exception("OpenVPN maintenance failed")
            await asyncio.sleep(self.settings.maintenance_interval_seconds)

    def _management(self) -> ManagementSession:
        return ManagementSession(self.paths.management, self.settings.management_timeout_seconds)

    def _load_entries(self) -> dict[str, ClientEntry]:
        entries: dict[str, ClientEntry] = {}
        for path in self.paths.clients.glob("*.conf"):
            serial = path.stem
            text = _read(path)
            entry = parse_client_entry(serial, text) if text is not None else None
            if entry is None or not _SERIAL.match(serial):
                log.warning("removing %s: not an entry this agent wrote", path)
                path.unlink(missing_ok=True)
                continue
            entries[serial] = entry
        return entries

    def _load_saved_material(self) -> None:
        text = _read(self.paths.material)
        if text is None:
            return
        try:
            material = OpenVpnMaterial.from_json(json.loads(text))
            ca = x509.load_pem_x509_certificate(material.ca_cert.encode())
            info = crl_info(material.crl, ca)
        except (ValueError, TypeError) as exc:
            log.error("ignoring the saved OpenVPN material %s: %s", self.paths.material, exc)
            return
        self._material, self._crl = material, info
        # Files written from it may be older (a crash mid-install): write them again.
        self._write_material_files(material)

    async def _refresh(self, reason: str) -> bool:
        """Fetches fresh material (without holding the lock: a slow control plane never delays
        `apply` or a cut) and installs it under the lock. False (and a backoff) on failure."""
        async with self._fetch_lock:
            now = self._clock()
            try:
                async with asyncio.timeout(self.settings.material_timeout_seconds):
                    material = await self._source()
                info = check_material(material, now)
                async with self._lock:
                    if not is_newer_crl(info, self._crl):
                        raise InvalidMaterial("crl: older than the one in place (lagging replica?)")
                    self._failures = 0
                    self._retry_at = None
                    self._fetched_at = now
                    self._last_error = None
                    await self._install_locked(material, info, reason)
                return True
            except Exception as exc:  # any source's failure: back off, keep the last good one
                self._failures += 1
                level = crl_decision(self.settings.crl_policy, now, self._crl, None, None).level
                delay = retry_delay(self.settings.crl_policy, self._failures, level)
                delay *= random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not crypto)
                self._retry_at = now + delay
                self._last_error = f"material ({reason}): {exc}"
                log.warning(
                    "OpenVPN material fetch failed (%s; %d in a row; next try in %.0fs): %s",
                    reason,
                    self._failures,
                    delay.total_seconds(),
                    exc,
                )
                return False

    def _write_material_files(self, material: OpenVpnMaterial) -> None:
        files = {
            self.paths.ca: material.ca_cert,
            self.paths.cert: material.server_cert,
            self.paths.key: material.server_key,
            self.paths.tls_crypt: material.tls_crypt_key,
            self.paths.crl: material.crl,
        }
        for path, content in files.items():
            if _read(path) != content:
                _write_atomic(path, content)
        config = render_server_config(self.settings, material, self.paths)
        if _read(self.paths.config) != config:
            _write_atomic(self.paths.config, config)

    async def _install_locked(self, material: OpenVpnMaterial, info: CrlInfo, reason: str) -> None:
        old = self._material
        old_config = _read(self.paths.config)
        _write_atomic(self.paths.material, json.dumps(material.to_json()))
        self._write_material_files(material)
        self._material, self._crl = material, info
        log.info(
            "OpenVPN material installed (%s): CRL #%s with %d revoked, next update %s",
            reason,
            info.number,
            len(info.revoked),
            info.next_update.isoformat(),
        )
        restart = old is not None and _read(self.paths.config) != old_config
        # New pools move every entry; a CRL may know of a revocation the feed has not said yet.
        await self._sync_locked()
        if restart and self._server is not None:
            log.warning("OpenVPN material changed (CA, keys, port or pools): restarting OpenVPN")
            await self._server.stop(self.settings.stop_timeout_seconds)
            self._server = None
            self._restart_at = 0.0
            await self._ensure_server_locked()

    async def _sync_locked(self) -> frozenset[str]:
        """Makes the entries on disk the wanted ones; cuts sessions that lost theirs. Returns
        the removed serials."""
        material = self._material
        if material is None:
            return frozenset()
        now = self._clock()
        revoked = self._crl.revoked if self._crl is not None else frozenset()
        if self._desired is not None:
            peers: Iterable[OpenVpnPeer] = self._desired.values()
        else:  # nothing applied since start: keep what is on disk (fail-static), re-checked
            peers = [
                OpenVpnPeer(
                    cert_serial=serial,
                    allowed_ips=(f"{entry.ipv4}/32", f"{entry.ipv6.ip}/128"),
                    expires_at=datetime.fromtimestamp(entry.expires_at, UTC),
                )
                for serial, entry in self._entries.items()
            ]
        wanted, refused = desired_entries(peers, material, now, revoked)
        for reason in refused:
            log.error("%s (never applied; the rest is)", reason)
        current = dict(self._entries)
        plan = plan_clients(current, wanted)
        if plan.empty:
            return frozenset()
        for serial in plan.remove:
            (self.paths.clients / f"{serial}.conf").unlink(missing_ok=True)
            del self._entries[serial]
        for serial, entry in plan.write.items():
            _write_atomic(self.paths.clients / f"{serial}.conf", render_client_entry(entry))
            self._entries[serial] = entry
        log.info(
            "OpenVPN clients: %d admitted (+%d new or changed, -%d removed)",
            len(self._entries),
            len(plan.write),
            len(plan.remove),
        )
        kills = dict.fromkeys(plan.cut, "HALT") | dict.fromkeys(plan.reconnect, "RESTART")
        if kills:
            await self._cut_locked(kills, current)
        return plan.remove

    async def _cut_locked(
        self, kills: Mapping[str, str], entries: Mapping[str, ClientEntry]
    ) -> None:
        """Ends the live sessions of `kills` (serial -> HALT or RESTART), found by the
        addresses their (old) entries pushed."""
        if self._server is None or not self._server.alive():
            return
        by_address = {a: s for a, s in address_index(entries).items() if s in kills}
        try:
            async with self._management() as management:
                snapshot = await management.status()
                for client in snapshot.clients:
                    serial = serial_of(client, by_address)
                    if serial is None or client.client_id is None:
                        continue
                    await self._kill(management, client.client_id, kills[serial])
                    log.info(
                        "cut OpenVPN session %d (serial %s, %s, %s)",
                        client.client_id,
                        serial,
                        client.common_name,
                        kills[serial],
                    )
        except ManagementError as exc:
            self._last_error = f"cut: {exc}"
            log.error("could not cut OpenVPN sessions %s: %s", sorted(kills), exc)

    async def _reconcile_locked(self) -> None:
        """Cuts sessions holding an address no entry pushes (left over from before a restart,
        or from an entry removed while the server was unreachable)."""
        if self._server is None or not self._server.alive():
            return
        by_address = address_index(self._entries)
        try:
            async with self._management() as management:
                snapshot = await management.status()
                for client in snapshot.clients:
                    if client.client_id is None or client.virtual_address is None:
                        continue  # still connecting: client-connect has not admitted it yet
                    if serial_of(client, by_address) is None and not self._just_killed(
                        client.client_id
                    ):
                        await self._kill(management, client.client_id, "HALT")
                        log.warning(
                            "cut OpenVPN session %d (%s, %s): no admitted peer holds %s",
                            client.client_id,
                            client.common_name,
                            client.real_address,
                            client.virtual_address,
                        )
        except ManagementError as exc:
            log.warning("could not reconcile OpenVPN sessions: %s", exc)

    def _just_killed(self, client_id: int) -> bool:
        """OpenVPN keeps a killed session listed for a few seconds (its delayed exit)."""
        now = time.monotonic()
        self._killed = {c: at for c, at in self._killed.items() if now - at < KILL_MEMORY_SECONDS}
        return client_id in self._killed

    async def _kill(self, management: ManagementSession, client_id: int, message: str) -> None:
        await management.kill(client_id, message)
        self._killed[client_id] = time.monotonic()

    async def _ensure_server_locked(self) -> None:
        if self._material is None:
            return
        if self._server is not None and self._server.alive():
            return
        if self._server is not None:
            code = self._server.returncode
            self._server_failures += 1
            delay = min(2.0**self._server_failures, self.settings.restart_backoff_max_seconds)
            self._restart_at = time.monotonic() + delay
            self._last_error = f"openvpn exited ({code})"
            log.error(
                "OpenVPN (pid %d) exited with %s; restarting in %.0fs. Its log ends:\n%s",
                self._server.pid,
                code,
                delay,
                self._log_tail(),
            )
            self._server = None
        if time.monotonic() < self._restart_at:
            return
        config = _read(self.paths.config) or ""
        adopted = _running_server(self.paths, config)
        if adopted is not None:
            log.info("adopted the running OpenVPN server (pid %d)", adopted)
            self._server = _Server(adopted, None)
            return
        await self._wait_gone(self.paths.pid)
        if await self._management_answers():
            # A server we cannot name yet (it has not written its pid file): never start a
            # second one, which would take its management socket path and fail on the port.
            log.warning(
                "an OpenVPN server answers on %s; adopting it next pass", self.paths.management
            )
            return
        self.paths.management.unlink(missing_ok=True)
        command = [
            *self.settings.command_prefix,
            self.settings.openvpn_binary,
            "--config",
            str(self.paths.config),
        ]
        process = _spawn(command, self.paths.log)
        _write_atomic(self.paths.config_digest, _digest(config))
        self._server = _Server(process.pid, process)
        log.info("started OpenVPN (pid %d): %s", process.pid, " ".join(command))

    async def _management_answers(self) -> bool:
        if not self.paths.management.exists():
            return False
        try:
            async with ManagementSession(self.paths.management, 1.0):
                return True
        except ManagementError:
            return False

    async def _wait_gone(self, pid_file: Path, seconds: float = 10.0) -> None:
        """Waits (up to `seconds`) for the server named in `pid_file` to exit, if it runs."""
        text = _read(pid_file)
        if text is None or not text.strip().isdigit():
            return
        pid = int(text.strip())
        deadline = time.monotonic() + seconds
        while _pid_alive(pid) and _is_our_server(pid, self.paths):
            if time.monotonic() > deadline:
                log.error("OpenVPN (pid %d) does not exit: killing it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return
            await asyncio.sleep(0.05)

    def _status_file(self) -> StatusSnapshot | None:
        """The status file if it is complete and fresh (three intervals, at least 30 s)."""
        text = _read(self.paths.status)
        if text is None:
            return None
        snapshot = parse_status(text)
        max_age = max(3 * self.settings.status_interval_seconds, 30)
        if not snapshot.complete or snapshot.time is None:
            return None
        if abs(time.time() - snapshot.time) > max_age:
            return None
        return snapshot

    def _log_tail(self, lines: int = 15) -> str:
        text = _read(self.paths.log) or ""
        return "\n".join(text.splitlines()[-lines:])

    def _shout(self, decision: CrlDecision) -> None:
        """Logs the CRL's state when it is not OK: on every change of level, then every 10
        minutes (warning) or every minute (critical, expired, missing)."""
        level = decision.level
        previous, at = self._last_loud
        every = 600.0 if level == CrlLevel.WARNING else 60.0
        if level == CrlLevel.OK:
            if previous != CrlLevel.OK:
                log.info("OpenVPN CRL fresh again (next update in %s)", decision.remaining)
                self._last_loud = (level, time.monotonic())
            return
        if level == previous and time.monotonic() - at < every:
            return
        self._last_loud = (level, time.monotonic())
        if level == CrlLevel.MISSING:
            log.critical("OpenVPN has no CRL yet (control plane unreachable?): it cannot start")
        elif level == CrlLevel.EXPIRED:
            log.critical(
                "OpenVPN CRL EXPIRED %s ago: OpenVPN refuses EVERY client until the control plane "
                "answers GET %s",
                -decision.remaining if decision.remaining is not None else "?",
                MATERIAL_PATH,
            )
        elif level == CrlLevel.CRITICAL:
            log.error(
                "OpenVPN CRL expires in %s: every client will be locked out then; the control "
                "plane has not answered (%s)",
                decision.remaining,
                self._last_error,
            )
        else:
            log.warning(
                "OpenVPN CRL expires in %s and could not be refreshed (%s)",
                decision.remaining,
                self._last_error,
            )


# --- Wiring from the agent's configuration ------------------------------------------------------

# The `[openvpn]` table of the agent's TOML file: option -> (type, meaning). Absent: default.
OPENVPN_OPTIONS: dict[str, tuple[str, str]] = {
    "enabled": ("bool", "Serve OpenVPN (default true when the table exists)."),
    "state_dir": (
        "path",
        "Server config, PKI, client entries, management socket, status and log "
        "(default <state_dir>/openvpn; at most ~80 characters: the socket path is limited).",
    ),
    "openvpn_binary": ("str", "The `openvpn` executable (default openvpn)."),
    "command_prefix": (
        "list",
        'Prepended to the openvpn command, e.g. ["ip", "netns", "exec", "vpn"]; it must exec.',
    ),
    "device": ("str", "The tun interface's name (default nodus-ovpn0)."),
    "proto": ("str", "udp (dual stack, default), udp4, udp6 or tcp-server."),
    "listen": ("str", "The address to bind (default: all)."),
    "push": (
        "list",
        'Options pushed to clients (default ["redirect-gateway def1 ipv6"]); add '
        '"dhcp-option DNS <ip>" for DNS.',
    ),
    "extra_directives": ("list", "Server directives appended verbatim, one per entry."),
    "keepalive": ("list", "[interval, timeout] seconds (default [10, 60])."),
    "status_interval_seconds": ("int", "How often OpenVPN rewrites its status file (5)."),
    "verb": ("int", "OpenVPN's log verbosity (3)."),
    "maintenance_interval_seconds": (
        "float",
        "Expiry, liveness and CRL checks (2).",
    ),
    "reconcile_interval_seconds": (
        "float",
        "How often sessions that no entry admits are looked for and cut (10).",
    ),
    "crl_refresh_interval_seconds": ("float", "Re-fetch the CRL at least this often (3600)."),
    "crl_warn_before_seconds": ("float", "Warn this long before the CRL expires (172800)."),
    "crl_critical_before_seconds": ("float", "Shout this long before it expires (43200)."),
}


def settings_from_table(table: Mapping[str, Any], agent_state_dir: Path) -> OpenVpnSettings:
    """OpenVpnSettings from the `[openvpn]` table (see OPENVPN_OPTIONS). ValueError names the
    bad option."""
    unknown = sorted(set(table) - set(OPENVPN_OPTIONS))
    if unknown:
        raise ValueError(f"[openvpn]: unknown option(s): {', '.join(unknown)}")

    def get(name: str, kind: type | tuple[type, ...]) -> Any:  # noqa: ANN401 (checked below)
        value = table[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"[openvpn] {name}: expected {OPENVPN_OPTIONS[name][0]}: {value!r}")
        return value

    def strings(name: str) -> tuple[str, ...]:
        value = table[name]
        if isinstance(value, str) and name == "command_prefix":
            return tuple(shlex.split(value))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"[openvpn] {name}: expected a list of strings: {value!r}")
        return tuple(value)

    options: dict[str, Any] = {}
    policy: dict[str, timedelta] = {}
    for name in table:
        kind = OPENVPN_OPTIONS[name][0]
        if name == "enabled":
            get(name, bool)
        elif name == "state_dir":
            options[name] = Path(get(name, str)).expanduser()
        elif name == "keepalive":
            value = table[name]
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise ValueError(f"[openvpn] keepalive: expected [interval, timeout]: {value!r}")
            options[name] = (value[0], value[1])
        elif kind == "list":
            options[name] = strings(name)
        elif name.startswith("crl_"):
            seconds = float(get(name, (int, float)))
            key = name.removeprefix("crl_").removesuffix("_seconds")
            policy[key] = timedelta(seconds=seconds)
        elif kind == "float":
            options[name] = float(get(name, (int, float)))
        elif kind == "int":
            options[name] = get(name, int)
        else:
            options[name] = get(name, str)
    options.setdefault("state_dir", agent_state_dir / "openvpn")
    if policy:
        default = CrlPolicy()
        options["crl_policy"] = replace(
            default,
            refresh_interval=policy.get("refresh_interval", default.refresh_interval),
            warn_before=policy.get("warn_before", default.warn_before),
            critical_before=policy.get("critical_before", default.critical_before),
        )
    return OpenVpnSettings(**options)


def from_config(table: Mapping[str, Any], config: AgentConfig) -> OpenVpnBackend:
    """The backend for `nodus-agent run`: settings from the `[openvpn]` table, material from
    the control plane at `config.control_plane.url`, signed in with the agent key. Nothing is
    started here: the first `apply` (or `stats`) starts it."""
    from node_agent.config import PASSPHRASE_ENV
    from node_agent.keys import load_agent_key

    settings = settings_from_table(table, config.state_dir)
    http = httpx.AsyncClient(
        base_url=config.control_plane.url,
        timeout=httpx.Timeout(config.control_plane.request_timeout_seconds),
        follow_redirects=False,
    )

    def account() -> LocalAccount:
        return load_agent_key(config.agent_key_file, os.environ.get(PASSPHRASE_ENV))

    tokens = AgentLogin(http, config.node_id, account)
    return OpenVpnBackend(settings, HttpMaterialSource(http, tokens))
