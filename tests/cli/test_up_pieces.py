"""The pieces of `nodus up` that need no root: config parsing and key filling, the kill
switch's ruleset and DNS refusing anything but what their grammar allows (a hostile node or API
cannot add a rule or a resolver line), the proof's verdicts, the QR output, the state file, and
usage errors (exit 2) before anything is signed or sent."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest

from control_plane.paths import REPO_ROOT
from nodus_cli.connect.payment import command_with_subscribe
from nodus_cli.tunnel import dns, killswitch, proof, qr, routes, wgconf
from nodus_cli.tunnel.state import StateStore, TunnelState
from nodus_cli.tunnel.system import TunnelError
from tests.support.qr import qr_texts

ISSUED = """[Interface]
PrivateKey = <insert your private key>
Address = 10.8.0.2/32, fd00:8::2/128
DNS = 9.9.9.10, 2620:fe::10
MTU = 1380

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
Endpoint = 198.18.0.1:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25
"""


def test_the_key_pair_is_made_here_and_filled_into_the_issued_config() -> None:
    keys = wgconf.new_key_pair()
    assert len(base64.b64decode(keys.private)) == len(base64.b64decode(keys.public)) == 32
    filled = wgconf.fill_private_key(ISSUED, keys.private)
    assert f"PrivateKey = {keys.private}\n" in filled
    with pytest.raises(TunnelError):
        wgconf.fill_private_key(filled, keys.private)  # no placeholder left


def test_wg_quick_keys_are_applied_by_nodus_and_the_rest_goes_to_wg_setconf() -> None:
    parsed = wgconf.parse(ISSUED)
    assert parsed.addresses == ["10.8.0.2/32", "fd00:8::2/128"]
    assert parsed.dns == ["9.9.9.10", "2620:fe::10"]
    assert parsed.mtu == 1380
    assert parsed.endpoints == ["198.18.0.1:51820"]
    assert "Address" not in parsed.setconf
    assert "DNS" not in parsed.setconf
    assert "MTU" not in parsed.setconf
    assert "PersistentKeepalive = 25" in parsed.setconf
    # With a keepalive the peer starts its handshake unasked, so `nodus up` waits for it.
    assert parsed.keepalive
    assert not wgconf.parse(ISSUED.replace("PersistentKeepalive = 25", "")).keepalive
    assert not wgconf.parse(ISSUED.replace("= 25", "= off")).keepalive
    with pytest.raises(TunnelError):
        wgconf.parse("[Interface]\nPostUp = rm -rf /\nnot a line\n")
    assert "PostUp" not in wgconf.parse("[Interface]\nPostUp = rm -rf /\n").setconf


@pytest.mark.parametrize(
    "line",
    ["Address = 10.8.0.2/32 dev lo", "DNS = 9.9.9.10 search", "MTU = 1e9", "MTU = 100"],
)
def test_a_hostile_config_cannot_pass_arguments_to_ip_or_lines_to_resolv_conf(line: str) -> None:
    with pytest.raises(TunnelError):
        wgconf.parse(f"[Interface]\n{line}\n")


def test_the_kill_switch_allows_only_loopback_the_tunnel_and_the_endpoint() -> None:
    rules = killswitch.ruleset("nodus0", "198.18.0.1", "udp", 51820)
    assert "policy drop;" in rules
    assert 'oifname "nodus0" accept' in rules
    assert rules.index("udp dport 51820 accept") < rules.index("reject with tcp reset")
    assert "ip daddr 198.18.0.1 udp dport 51820 accept" in rules
    assert "ip6 daddr 2001:db8::1 udp dport 1194" in killswitch.ruleset(
        "nodus0", "2001:db8::1", "udp", 1194
    )


def test_the_api_and_rpc_are_pinned_by_address_and_port_loopback_left_out() -> None:
    control = routes.control_destinations(
        "https://192.0.2.10/", "http://[2001:db8::7]:8545", "http://127.0.0.1:8000"
    )
    assert control == [("192.0.2.10", 443), ("2001:db8::7", 8545)]


@pytest.mark.parametrize(
    ("interface", "endpoint", "transport", "port"),
    [
        ('x" accept\n', "198.18.0.1", "udp", 1),
        ("nodus0", "198.18.0.1 accept", "udp", 1),
        ("nodus0", "198.18.0.1", "icmp", 1),
        ("nodus0", "198.18.0.1", "udp", 70000),
    ],
)
def test_the_kill_switch_refuses_values_outside_their_grammar(
    interface: str, endpoint: str, transport: str, port: int
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each value has its own message)
        killswitch.ruleset(interface, endpoint, transport, port)


def test_dns_is_written_in_place_and_restored_and_only_addresses_are_written(
    tmp_path: Path,
) -> None:
    resolv, backup = tmp_path / "resolv.conf", tmp_path / "backup"
    resolv.write_text("nameserver 192.0.2.53\n")
    inode = resolv.stat().st_ino
    with pytest.raises(ValueError):  # noqa: PT011
        dns.apply(["9.9.9.10\nsearch evil.example"], backup, resolv)
    assert resolv.read_text() == "nameserver 192.0.2.53\n"
    dns.apply(["9.9.9.10", "2620:fe::10"], backup, resolv)
    assert "nameserver 9.9.9.10\nnameserver 2620:fe::10\n" in resolv.read_text()
    assert resolv.stat().st_ino == inode  # a bind mount cannot be replaced by a rename
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert dns.restore(backup, resolv)
    assert resolv.read_text() == "nameserver 192.0.2.53\n"
    assert not dns.restore(backup, resolv)


def test_the_proof_fails_only_when_the_api_still_sees_this_host() -> None:
    assert proof.judge("198.18.0.1", "198.51.100.2", {"198.18.0.1"}).ok
    refused = proof.judge("198.51.100.2", "198.51.100.2", {"198.18.0.1"})
    assert not refused.ok
    assert "not in the tunnel" in refused.reason
    other = proof.judge("203.0.113.9", "198.51.100.2", {"198.18.0.1"})
    assert other.ok
    assert "another address" in other.reason
    assert proof.api_is_local("http://127.0.0.1:8000")
    assert not proof.api_is_local("https://api.nodus.example")


def test_the_unpaid_message_repeats_the_users_command_with_subscribe() -> None:
    argv = ["/usr/bin/nodus", "up", "--country", "DE", "--interface", "wg it"]
    assert command_with_subscribe(argv) == (
        "nodus up --country DE --interface 'wg it' --subscribe 1"
    )


def test_qr_codes_hold_the_config_and_the_png_is_private(tmp_path: Path) -> None:
    config = wgconf.fill_private_key(ISSUED, wgconf.new_key_pair().private)
    assert qr.terminal(config).count("\n") > 20
    png = tmp_path / "phone.png"
    qr.write_png(config, png)
    assert qr_texts(png) == [config]
    assert stat.S_IMODE(png.stat().st_mode) == 0o600


def test_the_state_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "nodus")
    assert store.load() is None
    state = TunnelState(
        node_id="0x" + "ab" * 32, protocol="wireguard", interface="nodus0",
        endpoint="198.18.0.1:51820", config_path="/x", config_id="id",
        addresses=["10.8.0.2/32"], expires_at=None, started_at=1.0,
        undo=[["ip", "link", "del", "dev", "nodus0"]],
    )  # fmt: skip
    store.save(state)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.load() == state
    store.clear()
    assert store.load() is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "0x" + "ab" * 32, "--country", "DE"], "exclude each other"),
        (["--protocol", "ipsec"], "wireguard or openvpn"),
        (["--interface", "bad name;"], "--interface"),
        (["--node", "0x12"], "64 hex"),
        (["--country", "Germany"], "two-letter"),
        (["--protocol", "openvpn", "--qr"], "WireGuard"),
    ],
)
def test_bad_usage_exits_2_before_anything_is_signed(args: list[str], message: str) -> None:
    done = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "nodus"), "up", *args],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
