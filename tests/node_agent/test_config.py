"""The TOML config, its environment overrides, and the README that documents every option."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from node_agent.config import ConfigError, OpenVpnOptions, load_config, with_network_overrides
from node_agent.options import OPTIONS

NODE = "0x" + "ab" * 32
MINIMAL = f"""
node_id = "{NODE}"
[control_plane]
url = "http://127.0.0.1:8000/"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})

    assert config.node_id == NODE
    assert config.control_plane.url == "http://127.0.0.1:8000"
    assert config.control_plane.poll_wait_seconds == 30
    assert config.heartbeat_seconds == 15.0
    assert config.metrics_seconds == 60.0
    assert config.health_listen is None  # no endpoint: nowhere the prober looks yet
    assert config.network.manage is True
    assert config.network.command_prefix == ()  # the network lives where the interface does
    assert config.wireguard.interface == "nodus0"
    assert config.wireguard.command_prefix == ()
    assert config.pools.ipv4 is None
    assert config.openvpn is None


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[wireguard]\ninterface = "wg7"\nlisten_port = 1000\n')
    config = load_config(
        path,
        environ={
            "NODUS_AGENT_WIREGUARD_INTERFACE": "wg9",
            "NODUS_AGENT_WIREGUARD_COMMAND_PREFIX": "ip netns exec 'node a'",
            "NODUS_AGENT_WIREGUARD_CONFIGURE_INTERFACE": "false",
            "NODUS_AGENT_POOLS_IPV4": "10.8.0.0/16",
            "NODUS_AGENT_HEALTH_LISTEN": "[::1]:9000",
            "NODUS_AGENT_CONTROL_PLANE_BACKOFF_CAP_SECONDS": "2.5",
        },
    )

    assert config.wireguard.interface == "wg9"
    assert config.wireguard.listen_port == 1000  # from the file
    assert config.wireguard.command_prefix == ("ip", "netns", "exec", "node a")
    assert config.wireguard.configure_interface is False
    assert config.pools.ipv4 == ipaddress.IPv4Network("10.8.0.0/16")
    assert config.health_listen == ("::1", 9000)
    assert config.control_plane.backoff_cap_seconds == 2.5


def test_health_listens_on_the_endpoints_port_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'endpoint = "203.0.113.7:51820"\n' + MINIMAL)
    config = load_config(path, environ={"NODUS_AGENT_WIREGUARD_COMMAND_PREFIX": "ip netns exec n"})

    assert config.endpoint == ("203.0.113.7", 51820)
    assert config.health_listen == ("", 51820)  # every address: a NATed public IP included
    assert config.network.command_prefix == ("ip", "netns", "exec", "n")
    with pytest.raises(ConfigError, match="endpoint"):
        load_config(path, environ={"NODUS_AGENT_ENDPOINT": "no-port"})
    with pytest.raises(ConfigError, match="egress_interface"):
        load_config(path, environ={"NODUS_AGENT_NETWORK_EGRESS_INTERFACE": "eth0; drop"})


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), {}).state_dir == Path("/var/lib/nodus-agent")
    config = load_config(write(tmp_path, 'state_dir = "st"\n' + MINIMAL), {})
    assert config.state_dir == tmp_path / "st"


def test_the_openvpn_table_is_a_typed_section_with_overrides(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL + '[openvpn]\ndevice = "tun7"\n'),
        {"NODUS_AGENT_OPENVPN_PROTO": "udp4", "NODUS_AGENT_OPENVPN_KEEPALIVE": "5 30"},
    )
    assert config.openvpn == OpenVpnOptions(
        state_dir=Path("/var/lib/nodus-agent/openvpn"),
        device="tun7",
        proto="udp4",
        keepalive=(5, 30),
    )
    with pytest.raises(ConfigError, match="unknown option"):
        load_config(write(tmp_path, MINIMAL + '[openvpn]\nmanagement = "/run/x.sock"\n'), {})
    enabled = load_config(write(tmp_path, MINIMAL), {"NODUS_AGENT_OPENVPN_ENABLED": "true"})
    assert enabled.openvpn == OpenVpnOptions(state_dir=Path("/var/lib/nodus-agent/openvpn"))


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("", {}, "node_id is required"),
        ('node_id = "0x12"\n[control_plane]\nurl = "http://x"', {}, "node_id"),
        ("typo = 1\n" + MINIMAL, {}, "unknown option(s): typo"),
        (MINIMAL + "retries = 1\n", {}, "unknown option(s): control_plane.retries"),
        (MINIMAL + "[wireguard]\nlisten_port = 70000\n", {}, "listen_port"),
        (MINIMAL + '[wireguard]\nlisten_port = "51820"\n', {}, "expected an integer"),
        (MINIMAL, {"NODUS_AGENT_REPORTS_HEARTBEAT_SECONDS": "soon"}, "expected a number"),
        (MINIMAL, {"NODUS_AGENT_WIREGUARD_INTERFACE": "a-name-far-too-long"}, "interface"),
        (MINIMAL, {"NODUS_AGENT_POOLS_IPV4": "fd00::/64"}, "pools.ipv4"),
        (MINIMAL, {"NODUS_AGENT_CONTROL_PLANE_POLL_WAIT_SECONDS": "61"}, "poll_wait"),
        (MINIMAL, {"NODUS_AGENT_CONTROL_PLANE_URL": "ftp://x"}, "control_plane.url"),
        ("not toml [", {}, "not valid TOML"),
    ],
)
def test_bad_configs_are_refused_with_the_option_named(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text), environ)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", {})


def test_the_readme_documents_every_option_and_its_variable() -> None:
    readme = (Path(__file__).parents[2] / "node_agent" / "README.md").read_text()
    for option in OPTIONS:
        assert f"`{option.key}`" in readme, option.key
        assert f"`{option.env}`" in readme, option.env


def test_runs_network_flags_override_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[network]\negress_interface = "eth0"\n')
    config = load_config(path, environ={})

    overridden = with_network_overrides(
        config, egress_interface="ens3", nat=False, keep_network=True
    )

    assert overridden.network.egress_interface == "ens3"
    assert (overridden.network.nat, overridden.network.keep_network) == (False, True)
    assert overridden.network.manage is True  # not given: as configured
    assert with_network_overrides(config).network == config.network
    with pytest.raises(ConfigError, match="--egress-interface"):
        with_network_overrides(config, egress_interface="eth0 oifname x")
