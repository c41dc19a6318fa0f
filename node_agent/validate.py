"""Turns a `GET /v1/agent/peers` answer (or the state file) into a DesiredSet, or refuses it.

Nothing from the network reaches an interface before passing here. A payload with one bad peer
is refused whole (the last good set stays applied): a control plane that sends a malformed key or
an address outside the node's pools is broken or compromised, and half of its answer is no more
trustworthy than the rest. Checks: WireGuard keys are canonical base64 of 32 bytes (not all zero);
OpenVPN serials are hex; every allowed IP is a single host (/32 or /128), inside the node's pool
of its family, and not the pool's network or the node's own address (the pool's first two); no
key, serial or address appears twice; expiries carry a time zone. With no pool pinned for a
family (`nodus-agent pools` was never run), every address of that family is refused.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node_agent.config import Pools
from node_agent.peers import DesiredSet, OpenVpnPeer, Peer, WireGuardPeer

MAX_PEERS = 1_000_000
_SERIAL = re.compile(r"^[0-9A-Fa-f]{1,64}$")


class InvalidPayload(ValueError):
    """The answer is not a peer set this agent may apply (the message says why)."""


@dataclass(frozen=True, slots=True)
class PollAnswer:
    revision: int
    changed: bool
    desired: DesiredSet | None  # None when `changed` is false: keep the set you have
    diff_since: int | None = None  # the answer was a diff against the set at this revision


def parse_poll_answer(body: object, pools: Pools, base: DesiredSet | None = None) -> PollAnswer:
    """The answer as a complete set. A diff (`diff_since`) is applied onto `base`, which must
    be the set at that revision; the result is checked whole, like a full set."""
    if not isinstance(body, dict):
        raise InvalidPayload("the answer is not a JSON object")
    revision = body.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise InvalidPayload(f"revision: not a non-negative integer ({revision!r})")
    changed = body.get("changed")
    if not isinstance(changed, bool):
        raise InvalidPayload("changed: not a boolean")
    peers = body.get("peers")
    if not changed:
        if peers is not None:
            raise InvalidPayload("peers: must be null when changed is false")
        return PollAnswer(revision, False, None)
    history = body.get("history")
    if history is not None and (not isinstance(history, str) or not 1 <= len(history) <= 64):
        raise InvalidPayload("history: not a string of 1-64 characters")
    diff_since = body.get("diff_since")
    if diff_since is None:
        return PollAnswer(revision, True, DesiredSet(revision, parse_peers(peers, pools), history))
    if base is None or diff_since != base.revision or history != base.history:
        raise InvalidPayload(f"a diff against revision {diff_since!r}, which is not our set")
    if not isinstance(peers, list) or len(peers) > MAX_PEERS:
        raise InvalidPayload("peers: not a list (of at most 1,000,000)")
    merged = {_identity(peer): peer for peer in base.peers}
    for key in _removed(body.get("removed")):
        merged.pop(key, None)
    for index, item in enumerate(peers):
        try:
            peer = parse_peer(item, pools)
        except InvalidPayload as exc:
            raise InvalidPayload(f"peers[{index}]: {exc}") from None
        merged[_identity(peer)] = peer
    applied = tuple(merged.values())
    _check_unique(applied)
    return PollAnswer(revision, True, DesiredSet(revision, applied, history), diff_since)


def _identity(peer: Peer) -> tuple[str, str]:
    if isinstance(peer, WireGuardPeer):
        return ("wireguard", peer.public_key)
    return ("openvpn", peer.cert_serial)


def _removed(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, list) or len(value) > MAX_PEERS:
        raise InvalidPayload("removed: not a list (of at most 1,000,000)")
    keys: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        protocol = item.get("protocol") if isinstance(item, dict) else None
        key = (
            item.get("public_key" if protocol == "wireguard" else "cert_serial")
            if protocol
            else None
        )
        if protocol not in ("wireguard", "openvpn") or not isinstance(key, str):
            raise InvalidPayload(f"removed[{index}]: not a wireguard key or openvpn serial")
        keys.append((protocol, key))
    return keys


def _check_unique(peers: Sequence[Peer], *, indexed: bool = False) -> None:
    """No key, serial or address twice (`indexed`: errors name the peer's index)."""
    identities: set[tuple[str, str]] = set()
    addresses: set[str] = set()
    for index, peer in enumerate(peers):
        where = f"peers[{index}]: " if indexed else ""
        identity = _identity(peer)
        if identity in identities:
            raise InvalidPayload(f"{where}{identity[1]} appears twice")
        identities.add(identity)
        for address in peer.allowed_ips:
            if address in addresses:
                raise InvalidPayload(f"{where}{address} is given to two peers")
            addresses.add(address)


def parse_peers(peers: object, pools: Pools) -> tuple[Peer, ...]:
    if not isinstance(peers, list):
        raise InvalidPayload("peers: not a list")
    if len(peers) > MAX_PEERS:
        raise InvalidPayload(f"peers: more than {MAX_PEERS}")
    parsed: list[Peer] = []
    for index, item in enumerate(peers):
        try:
            parsed.append(parse_peer(item, pools))
        except InvalidPayload as exc:
            raise InvalidPayload(f"peers[{index}]: {exc}") from None
    _check_unique(parsed, indexed=True)
    return tuple(parsed)


def parse_peer(item: object, pools: Pools) -> Peer:
    if not isinstance(item, dict):
        raise InvalidPayload("not an object")
    protocol = item.get("protocol")
    allowed_ips = _allowed_ips(item.get("allowed_ips"), pools)
    expires_at = _expiry(item.get("expires_at"))
    if protocol == "wireguard":
        return WireGuardPeer(_wireguard_key(item.get("public_key")), allowed_ips, expires_at)
    if protocol == "openvpn":
        serial = item.get("cert_serial")
        if not isinstance(serial, str) or not _SERIAL.match(serial):
            raise InvalidPayload("cert_serial: not 1-64 hex digits")
        return OpenVpnPeer(serial, allowed_ips, expires_at)
    raise InvalidPayload(f"protocol: unknown ({protocol!r})")


def check_wireguard_key(value: object) -> str:
    """A WireGuard public key: canonical base64 of 32 bytes, not all zero."""
    return _wireguard_key(value)


def _wireguard_key(value: object) -> str:
    if not isinstance(value, str) or len(value) != 44:
        raise InvalidPayload("public_key: not 44 characters of base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayload("public_key: not base64") from None
    if len(raw) != 32 or base64.b64encode(raw).decode() != value:
        raise InvalidPayload("public_key: not canonical base64 of 32 bytes")
    if raw == bytes(32):
        raise InvalidPayload("public_key: the all-zero key")
    return value


def _allowed_ips(value: object, pools: Pools) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise InvalidPayload("allowed_ips: expected one or two addresses")
    result: list[str] = []
    families: set[int] = set()
    for text in value:
        if not isinstance(text, str):
            raise InvalidPayload("allowed_ips: not a string")
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            raise InvalidPayload(f"allowed_ips: {text!r} is not an address with a prefix") from None
        if network.prefixlen != network.max_prefixlen:
            raise InvalidPayload(f"allowed_ips: {text} is not a single host (/32 or /128)")
        if network.version in families:
            raise InvalidPayload("allowed_ips: two addresses of one family")
        families.add(network.version)
        pool = pools.ipv4 if network.version == 4 else pools.ipv6
        if pool is None:
            raise InvalidPayload(
                f"allowed_ips: {text}: the node's IPv{network.version} pool is not set "
                "(run `nodus-agent pools` to fetch it), so no address can be checked"
            )
        host = network.network_address
        if host not in pool:
            raise InvalidPayload(f"allowed_ips: {text} is outside the node's pool {pool}")
        index = int(host) - int(pool.network_address)
        if index < 2:
            raise InvalidPayload(f"allowed_ips: {text} is the pool's network or the node")
        if network.version == 4 and host == pool.broadcast_address:
            raise InvalidPayload(f"allowed_ips: {text} is the pool's broadcast address")
        result.append(str(network))
    return tuple(result)


def _expiry(value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidPayload("expires_at: not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidPayload(f"expires_at: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidPayload("expires_at: no time zone")
    return moment


def peer_to_json(peer: Peer) -> dict[str, Any]:
    """The wire form of a peer (what the state file keeps; `parse_peer` reads it back)."""
    common = {"allowed_ips": list(peer.allowed_ips), "expires_at": peer.expires_at.isoformat()}
    if isinstance(peer, WireGuardPeer):
        return {"protocol": "wireguard", "public_key": peer.public_key, **common}
    return {"protocol": "openvpn", "cert_serial": peer.cert_serial, **common}
