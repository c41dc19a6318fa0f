"""`nodus-agent init`: the node host's first step. It makes the keys on the node host, writes
the config, and prints the exact `nodus node register ...` command for the wallet host, so the
operator never copies a key from one file into another."""

from __future__ import annotations

import json
import os
import secrets
import shlex
from pathlib import Path
from typing import Annotated

import typer
from eth_utils.address import is_address

from node_agent.cli_common import SYSTEM_STATE_DIR, ConfigPath, console
from node_agent.cli_common import fail as _fail
from node_agent.config import (
    DEFAULT_CONFIG_PATH,
    PASSPHRASE_ENV,
    ConfigError,
    is_loopback_listen,
    load_config,
    parse_endpoint,
    parse_listen,
)
from node_agent.keys import (
    KeyFileError,
    create_agent_key,
    generate_wireguard_private_key,
    node_id_of,
    wireguard_public_key,
    write_secret,
)

PROTOCOLS = ("wireguard", "openvpn")
LOOPBACK_REFUSED = (
    "--health-listen {listen} is a loopback address: the prober fetches "
    "http://<endpoint host>:<endpoint port>/health from outside this host, never reaches it, and "
    "the node loses its uptime score (65%) while `status` says ok. Leave --health-listen at "
    "its default (`endpoint`: every address on the endpoint's port), or add --loopback-health "
    "if a proxy on the endpoint forwards to it"
)


def init(
    config: ConfigPath = DEFAULT_CONFIG_PATH,
    node_id: Annotated[
        str | None,
        typer.Option(help="The id of an already registered node (bytes32), to replace its agent."),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            help="The operator wallet that will register a new node: its id is derived from "
            "this address and a fresh salt (NodeRegistry.nodeIdOf)."
        ),
    ] = None,
    endpoint: Annotated[
        str,
        typer.Option(
            help="The node's public host:port (WireGuard's UDP port; the prober fetches "
            "/health over TCP on the same host and port)."
        ),
    ] = "",
    country: Annotated[
        str, typer.Option(help="ISO country code, for the printed register command.")
    ] = "",
    protocols: Annotated[
        str, typer.Option(help="wireguard, openvpn or wireguard,openvpn.")
    ] = "wireguard",
    control_plane_url: Annotated[str, typer.Option()] = "http://127.0.0.1:8000",
    interface: Annotated[str, typer.Option(help="WireGuard interface name.")] = "nodus0",
    listen_port: Annotated[
        int | None, typer.Option(help="WireGuard UDP port (default: the endpoint's, else 51820).")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Default: /var/lib/nodus-agent with the default config, else a `state` "
            "directory next to the config."
        ),
    ] = None,
    health_listen: Annotated[
        str,
        typer.Option(
            help="host:port of GET /health; `endpoint` (the default): every address on the "
            "endpoint's port, where the prober looks; empty disables it."
        ),
    ] = "endpoint",
    loopback_health: Annotated[
        bool, typer.Option(help="Allow a loopback --health-listen (a proxy forwards to it).")
    ] = False,
    ipv4_pool: Annotated[str, typer.Option(help="The node's IPv4 pool, if known.")] = "",
    ipv6_pool: Annotated[str, typer.Option(help="The node's IPv6 pool, if known.")] = "",
    force: Annotated[bool, typer.Option(help="Overwrite existing keys and config.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Make the agent's Ethereum key (an encrypted keystore if NODUS_AGENT_PASSPHRASE is set,
    else a 0600 raw key file) and the WireGuard key pair, write the config, and print the
    `nodus node register ...` command to run on the wallet host.

    Example: nodus-agent init --operator 0xYourWallet --endpoint vpn.example.net:51820
    --country DE --protocols wireguard,openvpn --control-plane-url https://api.nodus.example
    """
    config = config.expanduser().resolve()
    if config.exists() and not force:
        raise _fail(f"{config} exists (use --force to overwrite it and make new keys)")
    chosen = [p.strip() for p in protocols.split(",") if p.strip()]
    if not chosen or any(p not in PROTOCOLS for p in chosen) or len(set(chosen)) != len(chosen):
        raise _fail("--protocols: wireguard, openvpn or wireguard,openvpn")
    try:
        parsed_endpoint = parse_endpoint(endpoint) if endpoint else None
        if health_listen != "endpoint":
            listen = parse_listen(health_listen)
            if is_loopback_listen(listen) and not loopback_health:
                raise ConfigError(LOOPBACK_REFUSED.format(listen=health_listen))
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    port = listen_port or (parsed_endpoint[1] if parsed_endpoint else 51820)
    salt: str | None = None
    if node_id is None:
        if operator is None or not is_address(operator):
            raise _fail(
                "give --operator ADDRESS (the wallet that will register a new node; the node id "
                "is derived from it) or --node-id (a node already registered)"
            )
        salt_bytes = secrets.token_bytes(32)
        salt = "0x" + salt_bytes.hex()
        node_id = node_id_of(operator, salt_bytes)
    node_id = node_id.lower()
    directory = config.parent
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    agent_key = directory / ("agent-key.json" if passphrase else "agent-key")
    wg_key = directory / "wireguard.key"
    if state_dir is None:
        state_dir = SYSTEM_STATE_DIR if config == DEFAULT_CONFIG_PATH else directory / "state"
    text = _config_text(
        node_id=node_id,
        url=control_plane_url,
        endpoint=endpoint,
        state_dir=state_dir.expanduser().resolve(),
        agent_key=agent_key,
        wg_key=wg_key,
        interface=interface,
        listen_port=port,
        health_listen=health_listen,
        ipv4_pool=ipv4_pool,
        ipv6_pool=ipv6_pool,
        wireguard="wireguard" in chosen,
        openvpn="openvpn" in chosen,
    )
    existing = [str(path) for path in (agent_key, wg_key) if path.exists()]
    if existing and not force:
        raise _fail(f"{', '.join(existing)} exist(s) (use --force to make new keys)")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        address = create_agent_key(agent_key, passphrase, overwrite=force)
        private = generate_wireguard_private_key()
        write_secret(wg_key, private + "\n", overwrite=force)
        config.write_text(text)
        load_config(config, environ={})  # what we wrote must load
    except (ConfigError, KeyFileError, OSError) as exc:
        raise _fail(str(exc)) from exc
    public = wireguard_public_key(private)
    register = register_command(
        endpoint=endpoint,
        country=country,
        protocols=chosen,
        agent=address,
        salt=salt,
        wireguard_public_key=public if "wireguard" in chosen else None,
    )
    result = {
        "config": str(config),
        "node_id": node_id,
        "salt": salt,
        "agent_address": address,
        "agent_key_file": str(agent_key),
        "agent_key_encrypted": passphrase is not None,
        "wireguard_public_key": public,
        "wireguard_private_key_file": str(wg_key),
        "register_command": register,
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    console.print(f"config                {config}", highlight=False)
    console.print(f"node id               {node_id}", highlight=False)
    console.print(
        f"agent address         {address}  "
        f"({'encrypted keystore' if passphrase else 'raw key, 0600'}: {agent_key})",
        highlight=False,
    )
    console.print(f"WireGuard public key  {public}", highlight=False)
    if not endpoint:
        console.print(
            "\n[yellow]warning:[/yellow] no --endpoint: the health answer has nowhere the prober "
            'looks until `endpoint = "host:port"` is set in the config',
            highlight=False,
        )
    first = (
        f"  1. on the wallet host, as {operator}:\n     {register}\n"
        if salt is not None
        else f"  1. NodeRegistry.setAgent({node_id}, {address}) from the operator wallet;\n"
    )
    console.print(
        "\nNext:\n"
        f"{first}"
        f"  2. here: nodus-agent pools --config {config}  (pins the node's pools; the agent "
        "refuses any peer outside them, and refuses to run without them);\n"
        f"  3. here: nodus-agent run --config {config}  (or the systemd unit: "
        "node_agent/deploy/nodus-agent.service);\n"
        f"  4. here: nodus-agent selftest --config {config}",
        highlight=False,
    )


def register_command(
    *,
    endpoint: str,
    country: str,
    protocols: list[str],
    agent: str,
    salt: str | None,
    wireguard_public_key: str | None,
) -> str:
    """The `nodus node register` command line for the wallet host (nodus_cli): everything it
    needs from this host (agent address, salt, WireGuard public key) spelled out."""
    words = [
        "nodus", "node", "register",
        "--endpoint", endpoint or "HOST:PORT",
        "--country", country.upper() or "CC",
        "--protocols", ",".join(protocols),
        "--agent", agent,
    ]  # fmt: skip
    if salt is not None:
        words += ["--salt", salt]
    if wireguard_public_key is not None:
        words += ["--wireguard-public-key", wireguard_public_key]
    return shlex.join(words)


def _config_text(
    *,
    node_id: str,
    url: str,
    endpoint: str,
    state_dir: Path,
    agent_key: Path,
    wg_key: Path,
    interface: str,
    listen_port: int,
    health_listen: str,
    ipv4_pool: str,
    ipv6_pool: str,
    wireguard: bool,
    openvpn: bool,
) -> str:
    def q(value: object) -> str:
        return json.dumps(str(value))  # a TOML basic string is a JSON string

    text = f"""# nodus-agent configuration (every option: node_agent/README.md).
# Environment overrides: NODUS_AGENT_<SECTION>_<NAME>, e.g. NODUS_AGENT_WIREGUARD_INTERFACE.
node_id = {q(node_id)}
endpoint = {q(endpoint)}
state_dir = {q(state_dir)}
agent_key_file = {q(agent_key)}
log_level = "INFO"

[control_plane]
url = {q(url)}
poll_wait_seconds = 30
request_timeout_seconds = 10.0
retry_attempts = 3
backoff_base_seconds = 0.5
backoff_cap_seconds = 30.0
breaker_failures = 5
breaker_reset_seconds = 30.0

[reports]
heartbeat_seconds = 15.0
metrics_seconds = 60.0

[expiry]
check_seconds = 30.0

[health]
# "endpoint": every address on the endpoint's port, where the prober looks.
listen = {q(health_listen)}

[metrics]
# Prometheus metrics on GET http://HOST:PORT/metrics (e.g. "127.0.0.1:9464"); empty: off.
listen = ""

[pools]
ipv4 = {q(ipv4_pool)}
ipv6 = {q(ipv6_pool)}

[network]
manage = true
egress_interface = ""
nat = true
keep_network = false

[wireguard]
enabled = {"true" if wireguard else "false"}
interface = {q(interface)}
listen_port = {listen_port}
private_key_file = {q(wg_key)}
configure_interface = true
command_prefix = []
wg_binary = "wg"
max_peers_per_command = 1000
"""
    if openvpn:
        text += "\n[openvpn]\nenabled = true\n"
    return text
