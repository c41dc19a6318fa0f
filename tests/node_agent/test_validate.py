"""Nothing reaches an interface unchecked: a payload with one bad peer is refused whole."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from node_agent.config import Pools
from node_agent.peers import OpenVpnPeer, WireGuardPeer
from node_agent.validate import InvalidPayload, parse_poll_answer
from tests.node_agent.fake_control_plane import wg_key, wg_peer

POOLS = Pools(ipaddress.IPv4Network("10.8.0.0/16"), ipaddress.IPv6Network("fd00:8::/112"))
NO_POOLS = Pools(None, None)


def answer(*peers: dict[str, Any], revision: int = 3) -> dict[str, Any]:
    return {"revision": revision, "changed": True, "peers": list(peers)}


def test_a_good_set_parses() -> None:
    ovpn = {
        "protocol": "openvpn",
        "cert_serial": "5f3a9c0e11",
        "allowed_ips": ["10.8.0.9/32", "fd00:8::9/128"],
        "expires_at": "2030-02-28T12:00:00Z",
    }
    parsed = parse_poll_answer(answer(wg_peer(2), ovpn), POOLS)

    assert parsed.changed
    assert parsed.revision == 3
    assert parsed.desired is not None
    wg, ov = parsed.desired.peers
    assert isinstance(wg, WireGuardPeer)
    assert wg.allowed_ips == ("10.8.0.2/32", "fd00:8::2/128")
    assert wg.expires_at.tzinfo is not None
    assert isinstance(ov, OpenVpnPeer)
    assert ov.cert_serial == "5f3a9c0e11"


def test_unchanged_means_keep_your_set() -> None:
    parsed = parse_poll_answer({"revision": 7, "changed": False, "peers": None}, POOLS)
    assert (parsed.revision, parsed.changed, parsed.desired) == (7, False, None)


def bad(**changes: Any) -> dict[str, Any]:
    peer = wg_peer(2)
    peer.update(changes)
    return peer


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        (bad(public_key="short"), "44 characters"),
        (bad(public_key="!" * 43 + "="), "not base64"),
        (bad(public_key="A" * 43 + "B"), "canonical"),
        (bad(public_key="A" * 43 + "="), "all-zero"),
        (bad(allowed_ips=["10.8.0.0/24"]), "/24 is not an address|not a single host"),
        (bad(allowed_ips=["10.8.0.2/31"]), "not a single host"),
        (bad(allowed_ips=["10.9.0.2/32"]), "outside the node's pool"),
        (bad(allowed_ips=["fd00:9::2/128"]), "outside the node's pool"),
        (bad(allowed_ips=["10.8.0.1/32"]), "the pool's network or the node"),
        (bad(allowed_ips=["10.8.255.255/32"]), "broadcast"),
        (bad(allowed_ips=["10.8.0.2/32", "10.8.0.3/32"]), "two addresses of one family"),
        (bad(allowed_ips=[]), "one or two"),
        (bad(allowed_ips=["banana"]), "not an address"),
        (bad(expires_at="2030-01-01T00:00:00"), "no time zone"),
        (bad(expires_at="tomorrow"), "not an ISO 8601"),
        (bad(protocol="ipsec"), "unknown"),
        ({"protocol": "openvpn", "cert_serial": "xyz", "allowed_ips": ["10.8.0.2/32"],
          "expires_at": "2030-01-01T00:00:00Z"}, "cert_serial"),
    ],
)  # fmt: skip
def test_one_bad_peer_refuses_the_whole_payload(peer: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        parse_poll_answer(answer(wg_peer(5), peer), POOLS)


def test_without_pools_every_peer_is_refused_with_the_fix() -> None:
    """Issue 9, finding 5: with the pools `init` left empty, any address used to pass."""
    with pytest.raises(InvalidPayload, match=r"IPv4 pool is not set \(run `nodus-agent pools`"):
        parse_poll_answer(answer(bad(allowed_ips=["192.0.2.7/32"])), NO_POOLS)
    with pytest.raises(InvalidPayload, match="IPv6 pool is not set"):
        parse_poll_answer(answer(wg_peer(2)), Pools(POOLS.ipv4, None))
    with pytest.raises(InvalidPayload, match="single host"):
        parse_poll_answer(answer(bad(allowed_ips=["0.0.0.0/0"])), NO_POOLS)


def test_duplicates_are_refused() -> None:
    key = wg_key()
    with pytest.raises(InvalidPayload, match="appears twice"):
        parse_poll_answer(answer(wg_peer(2, key=key), wg_peer(3, key=key)), POOLS)
    with pytest.raises(InvalidPayload, match="given to two peers"):
        parse_poll_answer(answer(wg_peer(2), wg_peer(2)), POOLS)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"revision": -1, "changed": True, "peers": []},
        {"revision": True, "changed": True, "peers": []},
        {"revision": 1, "changed": "yes", "peers": []},
        {"revision": 1, "changed": True, "peers": None},
        {"revision": 1, "changed": False, "peers": []},
    ],
)
def test_malformed_answers_are_refused(body: Any) -> None:
    with pytest.raises(InvalidPayload):
        parse_poll_answer(body, POOLS)


def test_a_diff_applies_onto_the_set_it_is_against() -> None:
    k2, k3, k4 = wg_key(), wg_key(), wg_key()
    whole = answer(wg_peer(2, key=k2), wg_peer(3, key=k3))
    base = parse_poll_answer({**whole, "history": "h1"}, POOLS).desired
    assert base is not None
    moved = {**wg_peer(3, key=k3), "expires_at": "2031-01-01T00:00:00Z"}
    diff = {
        **answer(moved, wg_peer(4, key=k4), revision=5),
        "history": "h1",
        "diff_since": 3,
        "removed": [{"protocol": "wireguard", "public_key": k2}],
    }

    parsed = parse_poll_answer(diff, POOLS, base)

    assert parsed.diff_since == 3
    assert parsed.desired is not None
    assert parsed.desired.revision == 5
    assert parsed.desired.history == "h1"
    keys = [peer.public_key for peer in parsed.desired.peers if isinstance(peer, WireGuardPeer)]
    assert keys == [k3, k4]
    assert parsed.desired.peers[0].expires_at.year == 2031


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"diff_since": 2}, "not our set"),  # against another revision
        ({"history": "h2"}, "not our set"),  # another history
        ({"peers": [{**wg_peer(9), "allowed_ips": ["10.8.0.2/32"]}]}, "given to two peers"),
        ({"removed": [{"protocol": "wireguard"}]}, r"removed\[0\]"),
        ({"removed": None}, "removed: not a list"),
    ],
)
def test_a_diff_that_does_not_fit_is_refused(changes: dict[str, Any], reason: str) -> None:
    base = parse_poll_answer({**answer(wg_peer(2)), "history": "h1"}, POOLS).desired
    diff = {**answer(revision=4), "history": "h1", "diff_since": 3, "removed": [], **changes}
    with pytest.raises(InvalidPayload, match=reason):
        parse_poll_answer(diff, POOLS, base)
    with pytest.raises(InvalidPayload, match="not our set"):
        parse_poll_answer(diff | {"diff_since": 3, "history": "h1"}, POOLS, None)
