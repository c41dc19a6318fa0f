"""The one rule for "is this address on the public Internet", over a table of addresses an
operator could register to aim the prober at the control plane's own network."""

from __future__ import annotations

import ipaddress

import pytest

from control_plane.addresses import AddressClass, classify, host_class, is_global

G, L, P, LL, M, U, R = (
    AddressClass.GLOBAL,
    AddressClass.LOOPBACK,
    AddressClass.PRIVATE,
    AddressClass.LINK_LOCAL,
    AddressClass.MULTICAST,
    AddressClass.UNSPECIFIED,
    AddressClass.RESERVED,
)

TABLE = [
    # Plain IPv4
    ("8.8.8.8", G),
    ("203.0.114.7", G),
    ("127.0.0.1", L),
    ("10.1.2.3", P),
    ("172.16.0.1", P),
    ("192.168.1.1", P),
    ("100.64.0.1", P),  # CGNAT
    ("198.18.0.1", P),  # benchmarking
    ("203.0.113.7", P),  # documentation
    ("169.254.169.254", LL),  # the cloud metadata service
    ("224.0.0.1", M),
    ("239.1.2.3", M),
    ("0.0.0.0", U),
    ("240.0.0.1", R),
    ("255.255.255.255", R),
    # Plain IPv6
    ("2606:4700::1111", G),
    ("::1", L),
    ("::", U),
    ("fd00::1", P),
    ("fe80::1", LL),
    ("fe80::1%eth0", LL),
    ("ff02::1", M),
    ("2001:db8::1", P),
    # IPv4-mapped
    ("::ffff:8.8.8.8", G),
    ("::ffff:127.0.0.1", L),
    ("::ffff:169.254.169.254", LL),
    # IPv4-compatible (deprecated; Python calls ::127.0.0.1 global)
    ("::127.0.0.1", L),
    ("::10.0.0.1", P),
    ("::8.8.8.8", G),
    # NAT64, well-known prefix
    ("64:ff9b::a9fe:a9fe", LL),  # 169.254.169.254 through the translator
    ("64:ff9b::7f00:1", L),
    ("64:ff9b::808:808", G),
    # NAT64, local-use prefix: the translator is on the local network
    ("64:ff9b:1::808:808", P),
    ("64:ff9b:1:ffff::1", P),
    # 6to4
    ("2002:a9fe:a9fe::1", LL),
    ("2002:7f00:1::1", L),
    ("2002:0a00:0001::1", P),
    ("2002:808:808::1", G),
    # Teredo: server 65.54.227.120, client 8.8.8.8 obfuscated (xor 0xffffffff)
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", G),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", L),  # client 127.0.0.1
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", P),  # server 10.0.0.1
]


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t for t, _ in TABLE])
def test_every_embedded_ipv4_address_is_unwrapped(text: str, expected: AddressClass) -> None:
    address = ipaddress.ip_address(text)
    assert classify(address) is expected
    assert is_global(address) is (expected is G)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("[::127.0.0.1]", L),
        ("::ffff:10.0.0.1", P),
        ("localhost", L),
        ("api.LOCALHOST.", L),
        ("8.8.8.8", G),
        ("vpn.example.net", None),
    ],
)
def test_the_class_of_an_endpoint_host(host: str, expected: AddressClass | None) -> None:
    assert host_class(host) == expected
