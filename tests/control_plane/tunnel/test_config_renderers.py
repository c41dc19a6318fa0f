"""The WireGuard and OpenVPN renderers refuse every interpolated value outside its grammar
(endpoint, host, port, keys, addresses, DNS servers, node id, certificates, tls-crypt key)
instead of writing it, whatever their caller hands them."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.tunnel import openvpn, wireguard
from control_plane.tunnel.render_checks import UnsafeConfigValue
from tests.control_plane.configs.strict_config import parse_openvpn, parse_wireguard
from tests.control_plane.nodes.hostile import HOSTILE_ENDPOINTS

NODE_ID = "0x" + "ab" * 32
KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
LINE_BREAKS = ["\n", "\r", "\u2028", "\u0085", "\x00"]


def _wireguard(**change: Any) -> str:
    values: dict[str, Any] = {
        "address": ["10.8.0.2/32", "fd00::2/128"],
        "server_public_key": KEY,
        "endpoint": "vpn.example.net:51820",
        "dns": ("9.9.9.10", "2620:fe::10"),
    }
    return wireguard.client_config(**{**values, **change})


@pytest.fixture(scope="module")
def pki() -> openvpn.NodePki:
    return openvpn.create_node_pki(NODE_ID)


def _openvpn(pki: openvpn.NodePki, **change: Any) -> str:
    values: dict[str, Any] = {
        "host": "vpn.example.net",
        "port": 1194,
        "node_id": NODE_ID,
        "ca_cert": pki.ca_cert,
        "client_cert": pki.server_cert,  # any certificate signed by the CA will do here
        "tls_crypt": pki.tls_crypt_key.decode(),
    }
    return openvpn.client_profile(**{**values, **change})


def test_valid_values_render_configs_the_strict_parsers_accept(pki: openvpn.NodePki) -> None:
    assert parse_wireguard(_wireguard())["Endpoint"] == "vpn.example.net:51820"
    assert parse_wireguard(_wireguard(endpoint="[2001:db8::7]:51820"))
    assert parse_openvpn(_openvpn(pki)) == {"host": "vpn.example.net", "port": "1194"}
    assert parse_openvpn(_openvpn(pki, host="2001:db8::7"))["host"] == "2001:db8::7"


@pytest.mark.parametrize("endpoint", HOSTILE_ENDPOINTS)
def test_wireguard_refuses_a_hostile_endpoint(endpoint: str) -> None:
    with pytest.raises(UnsafeConfigValue):
        _wireguard(endpoint=endpoint)


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_wireguard_refuses_every_other_hostile_value(brk: str) -> None:
    hostile: list[dict[str, Any]] = [
        {"endpoint": "VPN.example.net:51820"},  # not canonical: never stored so
        {"server_public_key": KEY[:-2] + brk + "="},
        {"server_public_key": "A" * 43 + "="},
        {"address": ["10.8.0.2/32" + brk + "PostUp = id", "fd00::2/128"]},
        {"address": ["10.8.0.2", "fd00::2/128"]},
        {"address": []},
        {"dns": ("9.9.9.10" + brk + "PostUp = id",)},
        {"dns": ("dns.example",)},
    ]
    for change in hostile:
        with pytest.raises(UnsafeConfigValue):
            _wireguard(**change)


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_openvpn_refuses_every_hostile_value(pki: openvpn.NodePki, brk: str) -> None:
    hostile: list[dict[str, Any]] = [
        {"host": "vpn.example.net" + brk + "script-security 2"},
        {"host": "fe80::1%eth0"},
        {"host": "vpn.example.net 1194\nup /bin/sh"},
        {"port": 0},
        {"port": 65536},
        {"port": "1194\nmanagement 0.0.0.0 7505"},
        {"node_id": NODE_ID + brk},
        {"ca_cert": pki.ca_cert + "</ca>" + brk + "up /bin/sh" + brk},
        {"client_cert": pki.server_cert + pki.ca_cert},
        {"client_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
        {"tls_crypt": pki.tls_crypt_key.decode() + "</tls-crypt>\nup /bin/sh\n"},
    ]
    if brk != "\n":  # an LF there is the normal form
        hostile += [
            {"client_cert": pki.server_cert.replace("\n", brk, 2)},
            {"tls_crypt": "# x" + brk + "up /bin/sh\n" + pki.tls_crypt_key.decode()},
        ]
    for change in hostile:
        with pytest.raises(UnsafeConfigValue):
            _openvpn(pki, **change)
