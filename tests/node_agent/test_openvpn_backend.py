"""The OpenVPN backend without a real OpenVPN: the server configuration it renders, the
client-connect script (run by /bin/sh as OpenVPN would), the client directory it keeps equal to
the desired set, the status file it reads, and when it fetches a fresh CRL and how loudly it
warns. A fake management socket stands in for OpenVPN's, so cutting sessions is checked too;
`sleep` stands in for the server process. The real thing runs in tests/e2e/test_openvpn_tunnel.py.

PKI comes from the control plane's own functions (tests may import it; node_agent never does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from control_plane.tunnel import openvpn as cp_openvpn
from node_agent.backends import PeerStats, VpnBackend
from node_agent.backends.openvpn import (
    ClientEntry,
    ClientMaterialSource,
    CrlInfo,
    CrlLevel,
    CrlPolicy,
    InvalidMaterial,
    MaterialUnavailable,
    OpenVpnBackend,
    OpenVpnMaterial,
    Paths,
    check_material,
    crl_decision,
    crl_info,
    desired_entries,
    entry_for,
    is_newer_crl,
    normalize_serial,
    parse_client_entry,
    parse_status,
    plan_clients,
    render_client_entry,
    render_server_config,
    retry_delay,
    stats_from,
)
from node_agent.backends.openvpn.templates import CLIENT_CONNECT_SCRIPT
from node_agent.client import ControlPlaneClient
from node_agent.config import ControlPlaneOptions, OpenVpnOptions, load_config
from node_agent.peers import OpenVpnPeer, WireGuardPeer
from node_agent.runner import build_backends
from tests.support.builders import ec_key, make_csr

NODE_ID = "0x" + "ab" * 32
IPV4_POOL = "10.8.0.0/16"
IPV6_POOL = "fd00:8::/112"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# --- PKI and material ------------------------------------------------------------------------


@dataclass
class Pki:
    node: cp_openvpn.NodePki = field(default_factory=lambda: cp_openvpn.create_node_pki(NODE_ID))

    def material(
        self,
        *,
        revoked: tuple[str, ...] = (),
        crl_time: datetime | None = None,
        port: int = 1194,
        ipv4_pool: str = IPV4_POOL,
        ipv6_pool: str = IPV6_POOL,
    ) -> OpenVpnMaterial:
        crl = cp_openvpn.build_crl(
            ca_cert_pem=self.node.ca_cert,
            ca_key_pem=self.node.ca_key,
            revoked=[(int(s, 16), crl_time or datetime.now(UTC)) for s in revoked],
            now=crl_time,
        )
        return OpenVpnMaterial.from_json(
            {
                "node_id": NODE_ID,
                "port": port,
                "ca_cert": self.node.ca_cert,
                "server_cert": self.node.server_cert,
                "server_key": self.node.server_key.decode(),
                "tls_crypt_key": self.node.tls_crypt_key.decode(),
                "crl": crl,
                "ipv4_pool": ipv4_pool,
                "ipv6_pool": ipv6_pool,
            }
        )

    def client_serial(self) -> str:
        csr = x509.load_pem_x509_csr(make_csr(ec_key()).encode())
        cert = cp_openvpn.sign_client_certificate(
            ca_cert_pem=self.node.ca_cert,
            ca_key_pem=self.node.ca_key,
            csr=csr,
            common_name="00000000-0000-4000-8000-000000000001",
            not_after=datetime.now(UTC) + timedelta(days=30),
        )
        return cp_openvpn.serial_hex(cert.serial)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def peer(
    serial: str, host: int, *, expires_at: datetime | None = None, ipv6: bool = True
) -> OpenVpnPeer:
    ips = [f"10.8.{host // 256}.{host % 256}/32"]
    if ipv6:
        ips.append(f"fd00:8::{host:x}/128")
    return OpenVpnPeer(
        cert_serial=serial,
        allowed_ips=tuple(ips),
        expires_at=expires_at or datetime.now(UTC) + timedelta(days=30),
    )


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path: a unix socket path holds at most 107 bytes, pytest's tmp_path may not fit."""
    path = Path(tempfile.mkdtemp(prefix="nds-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- Template rendering ----------------------------------------------------------------------


def test_the_server_configuration_holds_every_directive_the_backend_relies_on(
    pki: Pki, short_dir: Path
) -> None:
    settings = OpenVpnOptions(state_dir=short_dir, status_interval_seconds=3)
    paths = Paths.under(short_dir)

    text = render_server_config(settings, pki.material(port=1195), paths)

    lines = set(text.splitlines())
    for expected in [
        "port 1195",
        "proto udp",
        "dev nodus-ovpn0",
        "dev-type tun",
        "topology subnet",
        "server 10.8.0.0 255.255.0.0",
        "server-ipv6 fd00:8::/112",
        f"ca {paths.ca}",
        f"cert {paths.cert}",
        f"key {paths.key}",
        "dh none",
        f"tls-crypt {paths.tls_crypt}",
        "remote-cert-tls client",
        f"crl-verify {paths.crl}",
        "script-security 2",
        f'client-connect "/bin/sh {paths.client_connect} {paths.clients}"',
        f"management {paths.management} unix",
        f"status {paths.status} 3",
        "status-version 3",
        f"writepid {paths.pid}",
        "explicit-exit-notify 1",
        'push "redirect-gateway def1 ipv6"',
        "keepalive 10 60",
    ]:
        assert expected in lines, expected
    assert "$" not in text  # every placeholder was filled
    assert not any(line.startswith("local ") for line in lines)  # all addresses by default


def test_the_configuration_follows_the_settings(pki: Pki, short_dir: Path) -> None:
    settings = OpenVpnOptions(
        state_dir=short_dir,
        proto="tcp-server",
        listen="198.18.0.1",
        device="tun7",
        push=("dhcp-option DNS 9.9.9.9",),
        extra_directives=("max-clients 500",),
    )

    lines = set(render_server_config(settings, pki.material(), Paths.under(short_dir)).split("\n"))

    assert {"proto tcp-server", "local 198.18.0.1", "dev tun7", "max-clients 500"} <= lines
    assert 'push "dhcp-option DNS 9.9.9.9"' in lines
    assert "explicit-exit-notify 1" not in lines  # UDP only
    assert 'push "redirect-gateway def1 ipv6"' not in lines


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"state_dir": Path("/tmp/has space")}, "state_dir"),
        ({"state_dir": Path("/tmp/" + "x" * 100)}, "too long"),
        ({"device": "a-very-long-ifname"}, "device"),
        ({"proto": "udp-client"}, "proto"),
        ({"push": ('route "x"',)}, "double quotes"),
        ({"extra_directives": ("verb 9\nup /bin/evil",)}, "one directive"),
        ({"listen": "not-an-address"}, "IP"),
    ],
)
def test_settings_that_would_break_the_configuration_are_refused(
    changes: dict[str, object], message: str, short_dir: Path
) -> None:
    base = OpenVpnOptions(state_dir=short_dir)
    with pytest.raises(ValueError, match=message):
        replace(base, **changes)  # type: ignore[arg-type]


# --- The client-connect script -----------------------------------------------------------------


def _connect(short_dir: Path, serial_hex: str) -> tuple[int, str, str]:
    """Runs the script as OpenVPN does: `/bin/sh script <clients dir> <dynamic file>`."""
    script = short_dir / "client-connect.sh"
    script.write_text(CLIENT_CONNECT_SCRIPT)
    dynamic = short_dir / "dynamic.conf"
    dynamic.unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], "tls_serial_hex_0": serial_hex, "common_name": "cfg"}
    result = subprocess.run(
        ["/bin/sh", str(script), str(short_dir / "clients"), str(dynamic)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    written = dynamic.read_text() if dynamic.exists() else ""
    return result.returncode, written, result.stderr


def _entry(serial: str, *, expires_at: int) -> ClientEntry:
    return ClientEntry(
        serial=serial,
        ipv4=ipaddress.IPv4Address("10.8.0.5"),
        ipv4_netmask=ipaddress.IPv4Address("255.255.0.0"),
        ipv6=ipaddress.IPv6Interface("fd00:8::5/112"),
        ipv6_gateway=ipaddress.IPv6Address("fd00:8::1"),
        expires_at=expires_at,
    )


def test_the_script_admits_a_listed_serial_with_its_fixed_addresses(short_dir: Path) -> None:
    (short_dir / "clients").mkdir()
    entry = _entry("ab01", expires_at=int(datetime.now(UTC).timestamp()) + 3600)
    (short_dir / "clients" / "ab01.conf").write_text(render_client_entry(entry))

    # OpenVPN spells serials with colons, maybe upper-case, maybe with a leading zero byte.
    code, written, _ = _connect(short_dir, "00:AB:01")

    assert code == 0
    assert "ifconfig-push 10.8.0.5 255.255.0.0" in written
    assert "ifconfig-ipv6-push fd00:8::5/112 fd00:8::1" in written


@pytest.mark.parametrize(
    ("serial_hex", "expires_in", "reason"),
    [
        ("ab:02", 3600, "not in the desired set"),
        ("ab:01", -1, "expired"),
        ("", 3600, "no usable certificate serial"),
        ("ab;rm -rf /", 3600, "no usable certificate serial"),
    ],
)
def test_the_script_refuses_unlisted_expired_or_garbled_serials(
    short_dir: Path, serial_hex: str, expires_in: int, reason: str
) -> None:
    (short_dir / "clients").mkdir()
    entry = _entry("ab01", expires_at=int(datetime.now(UTC).timestamp()) + expires_in)
    (short_dir / "clients" / "ab01.conf").write_text(render_client_entry(entry))

    code, written, stderr = _connect(short_dir, serial_hex)

    assert code == 1
    assert written == ""
    assert reason in stderr


# --- Client entries and the client-directory diff ----------------------------------------------


def test_serials_are_spelled_one_way() -> None:
    assert normalize_serial("00:AB:cd") == "abcd"
    assert normalize_serial("0x0F") == "f"
    assert normalize_serial("5f3a9c0e11") == "5f3a9c0e11"
    for bad in ["", "xyz", "12 34", "f" * 65]:
        with pytest.raises(ValueError, match="serial"):
            normalize_serial(bad)


def test_an_entry_holds_the_peers_addresses_in_the_nodes_pools(pki: Pki) -> None:
    material = pki.material()
    expires = datetime(2030, 2, 1, tzinfo=UTC)

    entry = entry_for(peer("00AB", 0x0102, expires_at=expires), material)

    assert entry.serial == "ab"
    assert str(entry.ipv4) == "10.8.1.2"
    assert str(entry.ipv4_netmask) == "255.255.0.0"
    assert str(entry.ipv6) == "fd00:8::102/112"
    assert str(entry.ipv6_gateway) == "fd00:8::1"
    assert entry.expires_at == int(expires.timestamp())
    assert parse_client_entry("ab", render_client_entry(entry)) == entry
    # Without an IPv6 address, host i of the IPv4 pool gets host i of the IPv6 pool.
    assert entry_for(peer("ab", 0x0102, ipv6=False), material).ipv6 == entry.ipv6


@pytest.mark.parametrize(
    ("allowed_ips", "message"),
    [
        (("10.9.0.2/32", "fd00:8::2/128"), "outside"),
        (("10.8.0.1/32", "fd00:8::2/128"), "reserved"),  # the server's own address
        (("10.8.0.0/32", "fd00:8::2/128"), "reserved"),
        (("10.8.255.255/32", "fd00:8::2/128"), "reserved"),  # broadcast
        (("10.8.0.0/24", "fd00:8::2/128"), "single address"),
        (("10.8.0.2/32", "fd00:9::2/128"), "outside"),
        (("fd00:8::2/128",), "one IPv4"),
        (("10.8.0.2/32", "10.8.0.3/32"), "one IPv4"),
    ],
)
def test_a_peer_with_addresses_outside_the_pools_is_refused(
    pki: Pki, allowed_ips: tuple[str, ...], message: str
) -> None:
    bad = OpenVpnPeer("ab", allowed_ips, datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(ValueError, match=message):
        entry_for(bad, pki.material())


def test_a_naive_expiry_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="naive"):
        entry_for(peer("ab", 2, expires_at=datetime(2030, 1, 1)), pki.material())


def test_the_desired_entries_drop_expired_revoked_and_clashing_peers(pki: Pki) -> None:
    now = datetime.now(UTC)
    peers = [
        peer("a1", 2),
        peer("a2", 3, expires_at=now - timedelta(seconds=1)),  # expired
        peer("a3", 4),  # revoked in the CRL
        peer("a4", 2),  # takes a1's address
        peer("a1", 5),  # a1 twice
        peer("zz", 6),  # not a serial
        peer("a5", 7),
    ]

    wanted, refused = desired_entries(peers, pki.material(), now, frozenset({"a3"}))

    assert sorted(wanted) == ["a1", "a5"]
    assert str(wanted["a1"].ipv4) == "10.8.0.2"
    assert len(refused) == 3
    assert any("a4" in r and "a1" in r for r in refused)
    assert any("listed twice" in r for r in refused)
    assert any("'zz'" in r for r in refused)


def test_the_plan_touches_only_the_difference(pki: Pki) -> None:
    material = pki.material()
    keep = entry_for(peer("a1", 2), material)
    renewed_old = entry_for(peer("a2", 3, expires_at=NOW + timedelta(days=1)), material)
    renewed_new = entry_for(peer("a2", 3, expires_at=NOW + timedelta(days=31)), material)
    moved_old = entry_for(peer("a3", 4), material)
    moved_new = entry_for(peer("a3", 9), material)
    gone = entry_for(peer("a4", 5), material)
    new = entry_for(peer("a5", 6), material)
    current = {"a1": keep, "a2": renewed_old, "a3": moved_old, "a4": gone}
    wanted = {"a1": keep, "a2": renewed_new, "a3": moved_new, "a5": new}

    plan = plan_clients(current, wanted)

    assert plan.write == {"a2": renewed_new, "a3": moved_new, "a5": new}  # a1 untouched
    assert plan.remove == {"a4"}
    assert plan.cut == {"a4"}
    assert plan.reconnect == {"a3"}  # a renewal keeps its session; a move reconnects
    assert plan_clients(wanted, wanted).empty


# --- Status parsing ----------------------------------------------------------------------------

STATUS_V3 = "\n".join(
    "\t".join(row)
    for row in [
        ["TITLE", "OpenVPN 2.6.14 x86_64-pc-linux-gnu"],
        ["TIME", "2030-01-01 12:00:10", "1893499210"],
        ["HEADER", "CLIENT_LIST", "Common Name", "Real Address", "Virtual Address",
         "Virtual IPv6 Address", "Bytes Received", "Bytes Sent", "Connected Since",
         "Connected Since (time_t)", "Username", "Client ID", "Peer ID", "Data Channel Cipher"],
        ["CLIENT_LIST", "cfg-1", "198.18.0.2:43613", "10.8.0.2", "fd00:8::2", "2395", "2507",
         "2030-01-01 12:00:00", "1893499200", "UNDEF", "0", "0", "AES-256-GCM"],
        ["CLIENT_LIST", "cfg-2", "198.18.0.6:1194", "10.8.0.3", "fd00:8::3", "10", "20",
         "2030-01-01 11:00:00", "1893495600", "UNDEF", "7", "1", "AES-256-GCM"],
        ["CLIENT_LIST", "stranger", "198.18.0.9:1194", "10.8.0.99", "", "1", "2",
         "2030-01-01 11:00:00", "1893495600", "UNDEF", "8", "2", "AES-256-GCM"],
        ["HEADER", "ROUTING_TABLE", "Virtual Address", "Common Name", "Real Address", "Last Ref",
         "Last Ref (time_t)"],
        ["ROUTING_TABLE", "10.8.0.2", "cfg-1", "198.18.0.2:43613", "x", "1893499205"],
        ["ROUTING_TABLE", "fd00:8::2", "cfg-1", "198.18.0.2:43613", "x", "1893499201"],
        ["GLOBAL_STATS", "Max bcast/mcast queue length", "1"],
        ["END"],
    ]
)  # fmt: skip


def test_the_status_file_gives_each_clients_bytes_and_times() -> None:
    snapshot = parse_status(STATUS_V3)

    assert snapshot.complete
    assert snapshot.time == 1893499210
    first, second, stranger = snapshot.clients
    assert (first.common_name, first.virtual_address, first.virtual_ipv6) == (
        "cfg-1",
        "10.8.0.2",
        "fd00:8::2",
    )
    assert (first.bytes_received, first.bytes_sent, first.connected_since) == (
        2395,
        2507,
        1893499200,
    )
    assert (first.client_id, first.last_ref) == (0, 1893499205)
    assert (second.client_id, second.last_ref) == (7, None)
    assert stranger.virtual_ipv6 is None


def test_stats_are_keyed_by_serial_and_ignore_sessions_of_no_peer(pki: Pki) -> None:
    material = pki.material()
    entries = {s: entry_for(peer(s, h), material) for s, h in [("a1", 2), ("a2", 3), ("a3", 4)]}

    stats = stats_from(parse_status(STATUS_V3), entries)

    assert stats == [
        PeerStats("a1", 1893499205.0, 2395, 2507),  # last activity beats connected-since
        PeerStats("a2", 1893495600.0, 10, 20),
    ]


def test_the_comma_separated_status_version_2_parses_too() -> None:
    snapshot = parse_status(STATUS_V3.replace("\t", ","))

    assert [c.common_name for c in snapshot.clients] == ["cfg-1", "cfg-2", "stranger"]
    assert snapshot.clients[0].bytes_sent == 2507


def test_a_half_written_status_file_is_not_complete() -> None:
    half = STATUS_V3[: STATUS_V3.index("HEADER\tROUTING_TABLE")]
    assert not parse_status(half).complete
    assert parse_status("").clients == ()


# --- CRL freshness -----------------------------------------------------------------------------

POLICY = CrlPolicy()


def _crl(last_update: datetime, lifetime: timedelta = timedelta(days=7)) -> CrlInfo:
    return CrlInfo(last_update, last_update + lifetime, 1, frozenset(), "ca")


@pytest.mark.parametrize(
    ("age", "fetched_ago", "level", "due"),
    [
        (timedelta(minutes=5), timedelta(minutes=5), CrlLevel.OK, False),
        (timedelta(minutes=5), timedelta(hours=1), CrlLevel.OK, True),  # hourly
        (timedelta(days=3, hours=13), timedelta(minutes=1), CrlLevel.OK, True),  # half its life
        (timedelta(days=5, hours=1), timedelta(minutes=1), CrlLevel.WARNING, True),
        (timedelta(days=6, hours=13), timedelta(minutes=1), CrlLevel.CRITICAL, True),
        (timedelta(days=7, seconds=1), timedelta(minutes=1), CrlLevel.EXPIRED, True),
    ],
)
def test_when_the_crl_is_refreshed_and_how_worried_to_be(
    age: timedelta, fetched_ago: timedelta, level: CrlLevel, due: bool
) -> None:
    decision = crl_decision(POLICY, NOW, _crl(NOW - age), NOW - fetched_ago, None)

    assert decision.level == level
    assert decision.refresh_due is due
    assert decision.remaining == timedelta(days=7) - age


def test_a_short_lived_crl_is_refreshed_at_half_its_life() -> None:
    crl = _crl(NOW - timedelta(minutes=31), lifetime=timedelta(hours=1))
    assert crl_decision(POLICY, NOW, crl, NOW - timedelta(minutes=1), None).refresh_due
    crl = _crl(NOW - timedelta(minutes=29), lifetime=timedelta(hours=1))
    decision = crl_decision(POLICY, NOW, crl, NOW - timedelta(minutes=1), None)
    assert not decision.refresh_due
    assert decision.level == CrlLevel.OK  # thresholds shrink with the lifetime
    assert crl_decision(POLICY, NOW, crl, NOW - timedelta(seconds=30), None).level == CrlLevel.OK
    # Never twice within `min_refetch`, even past half its life.
    aged = _crl(NOW - timedelta(minutes=45), lifetime=timedelta(hours=1))
    assert not crl_decision(POLICY, NOW, aged, NOW - timedelta(seconds=30), None).refresh_due
    assert crl_decision(POLICY, NOW, aged, NOW - timedelta(seconds=30), None).level == (
        CrlLevel.WARNING
    )


def test_after_a_failure_the_next_fetch_waits_for_its_retry_time() -> None:
    expired = _crl(NOW - timedelta(days=8))
    later, earlier = NOW + timedelta(seconds=5), NOW - timedelta(seconds=1)

    assert not crl_decision(POLICY, NOW, expired, NOW, later).refresh_due
    assert crl_decision(POLICY, NOW, expired, NOW, earlier).refresh_due
    assert crl_decision(POLICY, NOW, None, None, None) == crl_decision(
        POLICY, NOW, None, None, earlier
    )
    missing = crl_decision(POLICY, NOW, None, None, None)
    assert (missing.level, missing.refresh_due) == (CrlLevel.MISSING, True)


def test_retries_back_off_and_hurry_when_the_crl_is_close_to_expiry() -> None:
    delays = [retry_delay(POLICY, n, CrlLevel.OK) for n in range(1, 10)]

    assert delays[:4] == [timedelta(seconds=s) for s in (5, 10, 20, 40)]
    assert delays[-1] == POLICY.retry_max
    assert retry_delay(POLICY, 9, CrlLevel.CRITICAL) == POLICY.retry_max_critical
    assert retry_delay(POLICY, 9, CrlLevel.EXPIRED) == POLICY.retry_max_critical
    assert retry_delay(POLICY, 10_000, CrlLevel.OK) == POLICY.retry_max


# --- Material checks ---------------------------------------------------------------------------


def test_good_material_passes_and_its_crl_lists_the_revoked(pki: Pki) -> None:
    serial = pki.client_serial()
    info = check_material(pki.material(revoked=(serial,)), datetime.now(UTC))

    assert info.revoked == {serial}
    assert info.next_update - info.last_update == timedelta(days=7, minutes=5)


def test_material_that_does_not_hang_together_is_refused(pki: Pki) -> None:
    now = datetime.now(UTC)
    other = Pki()
    good = pki.material()
    with pytest.raises(InvalidMaterial, match="crl: not signed"):
        check_material(replace(good, crl=other.material().crl), now)
    with pytest.raises(InvalidMaterial, match="server_cert"):
        check_material(replace(good, server_cert=other.node.server_cert), now)
    with pytest.raises(InvalidMaterial, match="does not match"):
        check_material(replace(good, server_key=other.node.server_key.decode()), now)
    with pytest.raises(InvalidMaterial, match="static key"):
        check_material(replace(good, tls_crypt_key="nope"), now)
    old = pki.material(crl_time=now - timedelta(days=8))
    with pytest.raises(InvalidMaterial, match="expired"):
        check_material(old, now)
    with pytest.raises(InvalidMaterial, match="port"):
        OpenVpnMaterial.from_json({**good.to_json(), "port": 0})
    with pytest.raises(InvalidMaterial, match="crl: missing"):
        OpenVpnMaterial.from_json({k: v for k, v in good.to_json().items() if k != "crl"})


def test_an_older_crl_never_replaces_a_newer_one_of_the_same_ca(pki: Pki) -> None:
    ca = x509.load_pem_x509_certificate(pki.node.ca_cert.encode())
    now = datetime.now(UTC)
    older = crl_info(pki.material(crl_time=now - timedelta(hours=1)).crl, ca)
    newer = crl_info(pki.material(crl_time=now).crl, ca)
    other = Pki()
    other_ca = x509.load_pem_x509_certificate(other.node.ca_cert.encode())
    foreign_old = crl_info(other.material(crl_time=now - timedelta(hours=2)).crl, other_ca)

    assert is_newer_crl(newer, older)
    assert not is_newer_crl(older, newer)
    assert is_newer_crl(older, None)
    assert is_newer_crl(foreign_old, newer)  # a new CA (node re-registered) always wins


# --- The backend, with a fake server and a fake management socket ------------------------------


@dataclass
class FakeSource:
    """The control plane's endpoint: answers `material`, or raises `failure`."""

    material: OpenVpnMaterial
    failure: Exception | None = None
    calls: int = 0

    async def __call__(self) -> OpenVpnMaterial:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return self.material


@dataclass
class FakeManagement:
    """OpenVPN's management socket: `status 3` answers `status`, `client-kill` is recorded."""

    path: Path
    status: str = STATUS_V3
    commands: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, str(self.path))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b">INFO:OpenVPN Management Interface Version 5 -- type 'help'\r\n")
        with contextlib.suppress(ConnectionError):
            while line := (await reader.readline()).decode().strip():
                self.commands.append(line)
                if line == "status 3":
                    writer.write(self.status.replace("\n", "\r\n").encode() + b"\r\n")
                elif line.startswith("client-kill"):
                    writer.write(
                        b">NOTIFY:noise first\r\nSUCCESS: client-kill command succeeded\r\n"
                    )
                elif line == "state":
                    writer.write(b"1893499200,CONNECTED,SUCCESS,10.8.0.1,,,,\r\nEND\r\n")
                elif line == "quit":
                    break
                await writer.drain()
        writer.close()

    @property
    def kills(self) -> list[str]:
        return [c for c in self.commands if c.startswith("client-kill")]


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    backend: OpenVpnBackend
    source: FakeSource
    management: FakeManagement
    clock: Clock
    paths: Paths

    def files(self) -> dict[str, str]:
        return {p.stem: p.read_text() for p in sorted(self.paths.clients.glob("*.conf"))}


FAKE_OPENVPN = (
    "import os, sys, time\n"
    "with open(sys.argv[1], 'w') as pid_file:\n"
    "    pid_file.write(str(os.getpid()))\n"
    "time.sleep(600)\n"
)


def fake_server(state_dir: Path) -> tuple[str, ...]:
    """A command prefix that runs one Python process in OpenVPN's stead: it writes its PID where
    OpenVPN's `writepid` would, keeps `openvpn --config <path>` on its command line (the
    arguments that follow the prefix), and dies of SIGTERM or SIGKILL with no child left."""
    return (sys.executable, "-c", FAKE_OPENVPN, str(Paths.under(state_dir).pid))


@pytest.fixture
async def rig(pki: Pki, short_dir: Path) -> AsyncIterator[Rig]:
    """A started backend whose "OpenVPN" is `sleep` (via the command prefix) and whose
    management socket is a fake; maintenance runs only when a test calls it."""
    settings = OpenVpnOptions(
        state_dir=short_dir, command_prefix=fake_server(short_dir), reconcile_interval_seconds=0
    )
    source, clock = FakeSource(pki.material()), Clock()
    backend = OpenVpnBackend(settings, source, clock=clock)
    await backend.start(run_maintenance=False)
    management = FakeManagement(backend.paths.management)
    await management.start()
    try:
        yield Rig(backend, source, management, clock, backend.paths)
    finally:
        await management.stop()
        await backend.stop()


async def test_the_backend_is_a_vpn_backend(rig: Rig) -> None:
    backend: VpnBackend = rig.backend
    assert await backend.stats() == []  # nothing admitted yet: no session is anybody's


async def test_start_writes_the_material_and_starts_the_server(rig: Rig, pki: Pki) -> None:
    health = rig.backend.health()

    assert health.server_running
    assert health.crl_level == CrlLevel.OK
    assert rig.paths.ca.read_text() == pki.node.ca_cert
    assert rig.paths.crl.read_text() == rig.source.material.crl
    assert rig.paths.key.stat().st_mode & 0o777 == 0o600
    assert rig.paths.root.stat().st_mode & 0o777 == 0o700
    assert "server 10.8.0.0 255.255.0.0" in rig.paths.config.read_text()
    assert rig.paths.client_connect.read_text() == CLIENT_CONNECT_SCRIPT


async def test_apply_writes_only_the_difference(rig: Rig) -> None:
    first = (peer("a1", 2), peer("a2", 3), peer("a3", 4))
    await rig.backend.apply(first)
    files = rig.files()
    assert sorted(files) == ["a1", "a2", "a3"]
    assert "ifconfig-push 10.8.0.3 255.255.0.0" in files["a2"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in rig.paths.clients.iterdir()}
    calls = rig.source.calls

    # a2 leaves, a4 arrives, a WireGuard peer is none of OpenVPN's business.
    wireguard = WireGuardPeer("x" * 43 + "=", ("10.8.0.9/32",), datetime.now(UTC))
    await rig.backend.apply((first[0], first[2], peer("a4", 5), wireguard))

    assert sorted(rig.files()) == ["a1", "a3", "a4"]
    for name in ("a1.conf", "a3.conf"):  # untouched
        assert (rig.paths.clients / name).stat().st_mtime_ns == mtimes[name]
    # The removed peer's session (10.8.0.3 in the status: client 7) was cut, and a fresh CRL
    # was fetched.
    assert rig.management.kills == ["client-kill 7 HALT"]
    assert rig.source.calls == calls + 1


async def test_an_address_move_reconnects_the_session(rig: Rig) -> None:
    await rig.backend.apply((peer("a1", 2),))
    await rig.backend.apply((peer("a1", 10),))

    assert "ifconfig-push 10.8.0.10 255.255.0.0" in rig.files()["a1"]
    assert rig.management.kills == ["client-kill 0 RESTART"]


async def test_a_bad_peer_is_never_applied_and_the_rest_is(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.backend.apply((peer("a1", 2), peer("not-hex", 3), peer("a2", 70000 * 256)))

    assert sorted(rig.files()) == ["a1"]
    assert "refused" in caplog.text


async def test_an_expired_peer_is_removed_and_cut_without_the_control_plane(rig: Rig) -> None:
    await rig.backend.apply((peer("a1", 2, expires_at=rig.clock.now + timedelta(minutes=5)),))
    rig.source.failure = MaterialUnavailable("control plane down")

    rig.clock.now += timedelta(minutes=5)
    await rig.backend.maintain()

    assert rig.files() == {}
    assert "client-kill 0 HALT" in rig.management.kills


async def test_a_session_that_no_entry_admits_is_cut(rig: Rig) -> None:
    await rig.backend.apply((peer("a1", 2), peer("a2", 3)))

    await rig.backend.maintain()

    assert rig.management.kills == ["client-kill 8 HALT"]  # the stranger on 10.8.0.99


async def test_a_revocation_in_the_crl_removes_the_peer_before_the_feed_says_so(
    rig: Rig, pki: Pki
) -> None:
    await rig.backend.apply((peer("a1", 2), peer("a2", 3)))

    rig.source.material = pki.material(revoked=("a2",))
    assert await rig.backend.refresh_material("test")

    assert sorted(rig.files()) == ["a1"]
    assert "client-kill 7 HALT" in rig.management.kills
    # And the feed's stale set cannot bring it back.
    await rig.backend.apply((peer("a1", 2), peer("a2", 3)))
    assert sorted(rig.files()) == ["a1"]


async def test_a_failed_fetch_keeps_the_last_good_crl_and_backs_off(
    rig: Rig, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    crl = rig.paths.crl.read_text()
    rig.source.failure = MaterialUnavailable("connection refused")

    assert not await rig.backend.refresh_material("test")

    assert rig.paths.crl.read_text() == crl
    assert rig.backend.health().last_error is not None
    assert "connection refused" in caplog.text
    calls = rig.source.calls
    await rig.backend.maintain()  # within the backoff: no new attempt
    assert rig.source.calls == calls
    rig.clock.now += timedelta(minutes=6)
    await rig.backend.maintain()
    assert rig.source.calls == calls + 1


async def test_an_expired_or_foreign_crl_from_the_control_plane_is_refused(
    rig: Rig, pki: Pki
) -> None:
    crl = rig.paths.crl.read_text()
    rig.source.material = pki.material(crl_time=datetime.now(UTC) - timedelta(days=8))
    assert not await rig.backend.refresh_material("test")
    rig.source.material = replace(pki.material(), crl=Pki().material().crl)
    assert not await rig.backend.refresh_material("test")

    assert rig.paths.crl.read_text() == crl


async def test_the_crl_is_refreshed_before_it_runs_out_and_the_log_gets_loud(
    rig: Rig, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    calls = rig.source.calls
    rig.clock.now += timedelta(minutes=30)
    await rig.backend.maintain()
    assert rig.source.calls == calls  # fetched at start, 30 minutes ago: fresh enough

    rig.clock.now += timedelta(minutes=31)
    await rig.backend.maintain()
    assert rig.source.calls == calls + 1  # hourly

    # The control plane goes away and the CRL ages toward its nextUpdate.
    rig.source.failure = MaterialUnavailable("control plane down")
    next_update = rig.backend.health().crl_next_update
    assert next_update is not None
    rig.clock.now = next_update - timedelta(hours=6)
    await rig.backend.maintain()
    assert rig.backend.health().crl_level == CrlLevel.CRITICAL
    assert "every client will be locked out" in caplog.text

    rig.clock.now += timedelta(hours=7)
    await rig.backend.maintain()
    assert rig.backend.health().crl_level == CrlLevel.EXPIRED
    assert any(r.levelname == "CRITICAL" and "EXPIRED" in r.message for r in caplog.records)

    # It answers again: a fresh CRL at once (within the short, critical backoff).
    rig.source.failure = None
    rig.source.material = pki.material(crl_time=rig.clock.now)
    rig.clock.now += timedelta(minutes=1)
    await rig.backend.maintain()
    assert rig.backend.health().crl_level == CrlLevel.OK


async def test_stats_map_sessions_to_serials(rig: Rig) -> None:
    await rig.backend.apply((peer("a1", 2), peer("a2", 3)))
    # The status file is stale (written long ago): the management socket answers instead.
    rig.paths.status.write_text(STATUS_V3)

    stats = await rig.backend.stats()

    assert [(s.key, s.rx_bytes, s.tx_bytes) for s in stats] == [("a1", 2395, 2507), ("a2", 10, 20)]
    assert "status 3" in rig.management.commands


async def test_stats_read_a_fresh_status_file(rig: Rig) -> None:
    await rig.backend.apply((peer("a1", 2),))
    now = int(datetime.now(UTC).timestamp())
    rig.paths.status.write_text(STATUS_V3.replace("1893499210", str(now)))
    rig.management.commands.clear()

    stats = await rig.backend.stats()

    assert [s.key for s in stats] == ["a1"]
    assert "status 3" not in rig.management.commands


async def test_a_restarted_backend_keeps_serving_what_it_had(pki: Pki, short_dir: Path) -> None:
    """Fail-static across an agent restart with the control plane down: the entries and the
    material on disk are used, and the running server is adopted, not restarted."""
    settings = OpenVpnOptions(state_dir=short_dir, command_prefix=fake_server(short_dir))
    down = MaterialUnavailable("down")
    first = OpenVpnBackend(settings, FakeSource(pki.material()))
    second = OpenVpnBackend(settings, FakeSource(pki.material(), down))
    # A changed configuration (here: nothing pushed) replaces an adopted server.
    third = OpenVpnBackend(replace(settings, push=()), FakeSource(pki.material(), down))
    try:
        await first.start(run_maintenance=False)
        await first.apply((peer("a1", 2),))
        pid = first.health().server_pid
        assert pid is not None
        await _until_written(first.paths.pid, str(pid))  # as OpenVPN's writepid does
        await first.stop(keep_server=True)

        await second.start(run_maintenance=False)
        health = second.health()
        assert health.server_pid == pid  # adopted
        assert health.server_running
        assert health.clients == 1
        assert (short_dir / "clients" / "a1.conf").exists()
        await second.stop(keep_server=True)

        await third.start(run_maintenance=False)
        new_pid = third.health().server_pid
        assert new_pid is not None
        assert new_pid != pid
        await _until_gone(pid)
    finally:
        for backend in (first, second, third):
            await backend.stop()


async def _until_written(path: Path, text: str, seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not _holds(path, text):  # noqa: ASYNC110 (another process writes it)
            await asyncio.sleep(0.01)


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text().strip() == text
    except FileNotFoundError:
        return False


async def _until_gone(pid: int, seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not _gone(pid):  # noqa: ASYNC110 (another process's state)
            await asyncio.sleep(0.05)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


async def test_a_server_that_dies_is_restarted(pki: Pki, short_dir: Path) -> None:
    settings = OpenVpnOptions(
        state_dir=short_dir,
        command_prefix=fake_server(short_dir),
        restart_backoff_max_seconds=0.1,
    )
    backend = OpenVpnBackend(settings, FakeSource(pki.material()))
    await backend.start(run_maintenance=False)
    try:
        pid = backend.health().server_pid
        assert pid is not None
        os.kill(pid, 9)
        await _until_gone(pid)

        await backend.maintain()  # notices, and waits out its backoff
        assert not backend.health().server_running
        assert "exited" in (backend.health().last_error or "")
        await asyncio.sleep(0.2)
        await backend.maintain()

        assert backend.health().server_running
        assert backend.health().server_pid not in (None, pid)
    finally:
        await backend.stop()


# --- The control plane's endpoint, over HTTP ----------------------------------------------------


def _material_json(pki: Pki) -> dict[str, object]:
    material = pki.material()
    return {
        **material.to_json(),
        "crl_last_update": "2030-01-01T11:55:00Z",
        "crl_next_update": "2030-01-08T12:00:00Z",
        "server_addresses": ["10.8.0.1/16", "fd00:8::1/112"],
    }


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    node_id: str = NODE_ID,
    account: LocalAccount | None = None,
) -> ControlPlaneClient:
    """The agent's one control-plane client, answered by `handler` (one attempt per call: the
    backend does its own backoff)."""
    options = ControlPlaneOptions(
        url="http://cp",
        poll_wait_seconds=30,
        request_timeout_seconds=5.0,
        retry_attempts=1,
        backoff_base_seconds=0.01,
        backoff_cap_seconds=0.01,
        breaker_failures=100,
        breaker_reset_seconds=1.0,
    )

    async def no_sleep(_: float) -> None:
        return None

    return ControlPlaneClient(
        options,
        node_id,
        account or Account.create(),
        transport=httpx.MockTransport(handler),
        sleep=no_sleep,
    )


async def test_the_http_source_signs_in_and_fetches_the_material(pki: Pki) -> None:
    agent = Account.create()
    node_id = "0x" + "cd" * 32
    seen: list[str] = []
    tokens = iter(["t1", "t2"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.headers.get('authorization')}")
        if request.url.path == "/v1/agent/challenge":
            return httpx.Response(200, json={"node_id": node_id, "challenge": f"sign {node_id}"})
        if request.url.path == "/v1/agent/login":
            body = json.loads(request.content)
            text = f"sign {node_id}"
            signer = Account.recover_message(encode_defunct(text=text), signature=body["signature"])
            assert signer == agent.address
            return httpx.Response(200, json={"access_token": next(tokens), "expires_in": 900})
        if request.headers["authorization"] == "Bearer t1":
            return httpx.Response(401, json={"error": {"code": "unauthorized"}})
        return httpx.Response(200, json=_material_json(pki))

    async with _client(handler, node_id, agent) as client:
        source = ClientMaterialSource(client)
        material = await source()

    assert material.ca_cert == pki.node.ca_cert
    assert str(material.ipv4_pool) == IPV4_POOL
    # The first token was refused (401): the source signed in again and retried once.
    assert seen == [
        "POST /v1/agent/challenge None",
        "POST /v1/agent/login None",
        "GET /v1/agent/openvpn Bearer t1",
        "POST /v1/agent/challenge None",
        "POST /v1/agent/login None",
        "GET /v1/agent/openvpn Bearer t2",
    ]


async def test_a_refused_login_is_tried_again_with_a_fresh_challenge() -> None:
    agent = Account.create()
    node_id = "0x" + "cd" * 32
    logins: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/agent/challenge":
            return httpx.Response(200, json={"challenge": f"sign {node_id} #{len(logins)}"})
        logins.append(1)
        if len(logins) == 1:  # another sign-in of this node took the single-use challenge
            return httpx.Response(401, json={"error": {"code": "unauthorized"}})
        return httpx.Response(200, json={"access_token": "t", "expires_in": 900})

    async with _client(handler, node_id, agent) as client:
        await client.login()
        token = client._token

    assert token == "t"
    assert len(logins) == 2


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (404, {"error": {"code": "not_found"}}, MaterialUnavailable, "does not serve OpenVPN"),
        (503, {"error": {"code": "unavailable"}}, MaterialUnavailable, "HTTP 503"),
        (200, ["not", "an", "object"], InvalidMaterial, "JSON object"),
        (200, {"port": 1194}, InvalidMaterial, "missing"),
    ],
)
async def test_the_http_source_reports_what_went_wrong(
    status: int, body: object, error: type[Exception], message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/agent/challenge":
            return httpx.Response(200, json={"challenge": f"sign {NODE_ID}"})
        if request.url.path == "/v1/agent/login":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 900})
        return httpx.Response(status, json=body)

    async with _client(handler) as client:
        with pytest.raises(error, match=message):
            await ClientMaterialSource(client)()


async def test_an_unreachable_control_plane_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with _client(refuse) as client:
        with pytest.raises(MaterialUnavailable, match="connection refused"):
            await ClientMaterialSource(client)()


# --- The [openvpn] table of the agent's configuration -------------------------------------------


def settings_from_table(table: dict[str, object], agent_state_dir: Path) -> OpenVpnOptions:
    """The `[openvpn]` section `load_config` makes of `table` (written as TOML)."""
    lines = [f"{name} = {json.dumps(value)}" for name, value in table.items()]
    text = (
        f'node_id = "{NODE_ID}"\nstate_dir = "{agent_state_dir}"\n'
        '[control_plane]\nurl = "http://127.0.0.1:9"\n[openvpn]\n' + "\n".join(lines) + "\n"
    )
    config_file = agent_state_dir / "agent.toml"
    config_file.write_text(text)
    options = load_config(config_file, environ={}).openvpn
    assert options is not None
    return options


def test_the_openvpn_table_becomes_settings(short_dir: Path) -> None:
    settings = settings_from_table(
        {
            "enabled": True,
            "command_prefix": "ip netns exec vpn",
            "device": "tun3",
            "push": ["dhcp-option DNS 9.9.9.9"],
            "keepalive": [5, 30],
            "status_interval_seconds": 2,
            "maintenance_interval_seconds": 1,
            "crl_refresh_interval_seconds": 600,
        },
        short_dir,
    )

    assert settings.state_dir == short_dir / "openvpn"
    assert settings.command_prefix == ("ip", "netns", "exec", "vpn")
    assert settings.device == "tun3"
    assert settings.push == ("dhcp-option DNS 9.9.9.9",)
    assert settings.keepalive == (5, 30)
    assert settings.maintenance_interval_seconds == 1.0
    assert settings.crl_policy.refresh_interval == timedelta(minutes=10)
    assert settings.crl_policy.warn_before == CrlPolicy().warn_before
    assert settings_from_table({}, short_dir) == OpenVpnOptions(state_dir=short_dir / "openvpn")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"colour": "blue"}, "unknown option"),
        ({"verb": "3"}, "verb"),
        ({"verb": True}, "verb"),
        ({"push": "redirect-gateway"}, "push"),
        ({"keepalive": [10]}, "keepalive"),
        ({"device": "x" * 16}, "device"),
    ],
)
def test_a_bad_openvpn_table_is_refused(
    table: dict[str, object], message: str, short_dir: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from_table(table, short_dir)


def test_from_config_wires_the_backend_without_starting_it(tmp_path: Path) -> None:
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        f"""
node_id = "0x{"ef" * 32}"
state_dir = "/tmp/nds-from-config"
control_plane.url = "http://127.0.0.1:9"
wireguard.enabled = false
[openvpn]
proto = "udp4"
"""
    )
    config = load_config(config_file, environ={})
    assert config.openvpn is not None

    backend = build_backends(config, _client(lambda _: httpx.Response(503)))["openvpn"]
    assert isinstance(backend, OpenVpnBackend)

    assert backend.settings.proto == "udp4"
    assert backend.paths.root == Path("/tmp/nds-from-config/openvpn")
    assert not Path("/tmp/nds-from-config").exists()  # nothing happens until the first apply
