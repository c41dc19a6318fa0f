"""`nodus-agent init`: the agent key (keystore or raw 0600 file), the WireGuard key pair, a config
that loads, and what the operator registers on-chain."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from control_plane.chain.contracts import node_id_of as registry_node_id_of
from node_agent.cli import app
from node_agent.config import load_config
from node_agent.keys import (
    KeyFileError,
    create_agent_key,
    generate_wireguard_private_key,
    load_agent_key,
    node_id_of,
    read_wireguard_private_key,
    wireguard_public_key,
)
from node_agent.validate import check_wireguard_key

runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_wireguard_keys_match_what_wg_derives() -> None:
    private = generate_wireguard_private_key()
    public = wireguard_public_key(private)
    check_wireguard_key(public)
    derived = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, check=False
    )
    if derived.returncode == 0:  # wireguard-tools present
        assert derived.stdout.strip() == public


def test_raw_agent_key_file_is_0600_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "agent-key"
    address = create_agent_key(path, None)

    assert mode(path) == 0o600
    assert load_agent_key(path, None).address == address
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_agent_key(path, None)


def test_keystore_needs_its_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "agent-key.json"
    address = create_agent_key(path, "correct horse")

    assert json.loads(path.read_text())["crypto"]["kdf"] == "scrypt"
    assert mode(path) == 0o600
    assert load_agent_key(path, "correct horse").address == address
    with pytest.raises(KeyFileError, match="NODUS_AGENT_PASSPHRASE"):
        load_agent_key(path, None)
    with pytest.raises(KeyFileError, match="cannot decrypt"):
        load_agent_key(path, "wrong")


def test_init_writes_keys_and_a_config_that_loads(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "agent.toml"
    node_id = "0x" + "cd" * 32

    result = runner.invoke(
        app,
        ["init", "--config", str(config), "--node-id", node_id, "--interface", "wg5",
         "--listen-port", "51999", "--ipv4-pool", "10.9.0.0/16", "--json"],
        env={"NODUS_AGENT_PASSPHRASE": ""},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    loaded = load_config(config, environ={})
    assert loaded.node_id == node_id
    assert loaded.wireguard.interface == "wg5"
    assert loaded.wireguard.listen_port == 51999
    assert str(loaded.pools.ipv4) == "10.9.0.0/16"
    assert loaded.state_dir == tmp_path / "etc" / "state"
    assert printed["agent_key_encrypted"] is False
    assert mode(loaded.agent_key_file) == 0o600
    assert mode(loaded.wireguard.private_key_file) == 0o600
    assert load_agent_key(loaded.agent_key_file, None).address == printed["agent_address"]
    private = read_wireguard_private_key(loaded.wireguard.private_key_file)
    assert wireguard_public_key(private) == printed["wireguard_public_key"]

    again = runner.invoke(app, ["init", "--config", str(config)])
    assert again.exit_code == 2
    assert "exists" in again.output


def test_init_without_operator_or_node_id_says_what_to_give(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    for extra in ([], ["--operator", "not-an-address"]):
        result = runner.invoke(app, ["init", "--config", str(config), *extra])
        assert result.exit_code == 2
        assert "--operator ADDRESS" in result.output
        assert not config.exists()


def test_init_with_a_passphrase_writes_a_keystore_and_prints_the_register_command(
    tmp_path: Path,
) -> None:
    config = tmp_path / "agent.toml"

    operator = "0x" + "ab" * 20
    result = runner.invoke(
        app,
        ["init", "--config", str(config), "--operator", operator, "--endpoint",
         "vpn.example.net:51820", "--country", "de", "--protocols", "wireguard,openvpn"],
        env={"NODUS_AGENT_PASSPHRASE": "s3cret"},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    loaded = load_config(config, environ={})
    assert loaded.agent_key_file.name == "agent-key.json"
    address = load_agent_key(loaded.agent_key_file, "s3cret").address
    output = " ".join(result.stdout.split())
    # The node id is NodeRegistry.nodeIdOf(operator, salt): register takes the salt.
    salt = output.split("--salt ")[1].split()[0]
    assert loaded.node_id == node_id_of(operator, bytes.fromhex(salt[2:]))
    # The same id the registry derives (control_plane's helper is checked against anvil).
    assert loaded.node_id == registry_node_id_of(operator, bytes.fromhex(salt[2:]))
    public = wireguard_public_key(read_wireguard_private_key(loaded.wireguard.private_key_file))
    # Everything the wallet host needs, in one command: no key copied by hand.
    assert (
        "nodus node register --endpoint vpn.example.net:51820 --country DE --protocols "
        f"wireguard,openvpn --agent {address} --salt {salt} --wireguard-public-key {public}"
    ) in output
    assert f"node id {loaded.node_id}" in output
    assert loaded.endpoint == ("vpn.example.net", 51820)
    assert loaded.health_listen == ("", 51820)  # where the prober looks
    assert loaded.openvpn is not None


def test_init_refuses_a_loopback_health_address_unless_told_and_says_why(
    tmp_path: Path,
) -> None:
    config = tmp_path / "agent.toml"
    base = ["init", "--config", str(config), "--operator", "0x" + "ab" * 20,
            "--endpoint", "198.51.100.4:51820", "--health-listen", "127.0.0.1:9810"]  # fmt: skip

    refused = runner.invoke(app, base)

    assert refused.exit_code == 2
    said = " ".join(refused.output.split())
    assert "loopback address: the prober fetches http://<endpoint host>:<endpoint port>" in said
    assert "--loopback-health" in said
    assert not config.exists()
    allowed = runner.invoke(app, [*base, "--loopback-health"])
    assert allowed.exit_code == 0, allowed.output
    assert load_config(config, environ={}).health_listen == ("127.0.0.1", 9810)
