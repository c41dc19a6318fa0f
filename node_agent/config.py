"""The agent's configuration: a TOML file, each option overridable by an environment variable.

Every option is declared once in `OPTIONS` (its TOML key, type, default and meaning); the TOML
parser, the `NODUS_AGENT_*` overrides and node_agent/README.md all follow that table (a test
checks the README lists each one), the `[openvpn]` section's options included.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from node_agent.options import OPTIONS, Kind, Option

DEFAULT_CONFIG_PATH = Path("/etc/nodus-agent/agent.toml")
CONFIG_ENV = "NODUS_AGENT_CONFIG"
PASSPHRASE_ENV = "NODUS_AGENT_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret

_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)
_NODE_ID = re.compile(r"^0x[0-9a-f]{64}$")
_INTERFACE = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@=:-]+$")
_DEVICE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAX_UNIX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
MANAGEMENT_SOCKET = Path("run/management.sock")  # under the OpenVPN state_dir


class ConfigError(ValueError):
    """The configuration is missing, unreadable or invalid (the message says which option)."""


_BY_KEY = {option.key: option for option in OPTIONS}
_SECTIONS = {key.split(".")[0] for key in _BY_KEY if "." in key}


@dataclass(frozen=True, slots=True)
class ControlPlaneOptions:
    url: str
    poll_wait_seconds: int
    request_timeout_seconds: float
    retry_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    breaker_failures: int
    breaker_reset_seconds: float


@dataclass(frozen=True, slots=True)
class WireGuardOptions:
    enabled: bool
    interface: str
    listen_port: int
    private_key_file: Path
    configure_interface: bool
    command_prefix: tuple[str, ...]
    wg_binary: str
    max_peers_per_command: int


def safe_path(path: Path, what: str) -> Path:
    """`path` made absolute, refused unless it is plain enough to render into a config file."""
    resolved = path.absolute()
    if not _SAFE_PATH.match(str(resolved)):
        raise ValueError(f"{what}: {resolved} must hold only letters, digits and ._/+@=:-")
    return resolved


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
class OpenVpnOptions:
    """How the node runs OpenVPN (the `[openvpn]` section). Every path lives under
    `state_dir` (0700). Refuses (ValueError) what would break the server configuration."""

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
        socket = safe_path(self.state_dir, "state_dir") / MANAGEMENT_SOCKET
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
class NetworkOptions:
    """What `run` sets up around the VPN servers (network.py)."""

    manage: bool = True
    egress_interface: str | None = None  # None: the default route's
    nat: bool = True
    keep_network: bool = False
    nft_table: str = "nodus_agent"
    command_prefix: tuple[str, ...] = ()
    wireguard_go_binary: str = "wireguard-go"


@dataclass(frozen=True, slots=True)
class Pools:
    ipv4: ipaddress.IPv4Network | None
    ipv6: ipaddress.IPv6Network | None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    path: Path | None
    node_id: str
    state_dir: Path
    agent_key_file: Path
    log_level: str
    control_plane: ControlPlaneOptions
    heartbeat_seconds: float
    metrics_seconds: float
    expiry_check_seconds: float
    health_listen: tuple[str, int] | None
    pools: Pools
    wireguard: WireGuardOptions
    openvpn: OpenVpnOptions | None  # None: OpenVPN is not served
    endpoint: tuple[str, int] | None = None  # the node's public host:port, as registered
    network: NetworkOptions = field(default_factory=NetworkOptions)
    metrics_listen: tuple[str, int] | None = None  # the Prometheus endpoint; None: off


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Reads `path` (TOML; None: no file, options from the environment only) and applies the
    `NODUS_AGENT_*` overrides. Raises ConfigError naming the bad option."""
    environ = os.environ if environ is None else environ
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    raw = _flatten(document)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.env in environ:
            values[option.key] = _from_env(option, environ[option.env])
        elif option.key in raw:
            values[option.key] = _from_toml(option, raw[option.key])
        else:
            values[option.key] = option.default
    if environ.get(_BY_KEY["openvpn.enabled"].env) is None and values["openvpn.enabled"] is None:
        values["openvpn.enabled"] = "openvpn" in document  # the table's presence turns it on
    return _build(path, values)


def _flatten(document: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in document.items():
        if name in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{name}] must be a table")
            for key, inner in value.items():
                flat[f"{name}.{key}"] = inner
        else:
            flat[name] = value
    unknown = sorted(set(flat) - set(_BY_KEY))
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
    return flat


def _from_toml(option: Option, value: object) -> object:
    kind = option.kind
    ok = {
        "str": isinstance(value, str),
        "path": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "command": isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
        "pair": isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }[kind]
    if not ok:
        raise ConfigError(f"{option.key}: expected {_kind_name(kind)}, got {value!r}")
    if kind == "float":
        assert isinstance(value, int | float)
        return float(value)
    if kind == "command" and isinstance(value, str):
        return shlex.split(value)
    return value


def _from_env(option: Option, text: str) -> object:
    kind = option.kind
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if kind in ("list", "command"):
            return shlex.split(text)
        if kind == "pair":
            first, second = text.split()
            return [int(first), int(second)]
    except ValueError as exc:
        raise ConfigError(f"{option.env}: expected {_kind_name(kind)}, got {text!r}") from exc
    return text


def _kind_name(kind: Kind) -> str:
    return {
        "str": "a string",
        "path": "a path",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "list": "a list of strings",
        "command": "a list of strings or a shell-quoted string",
        "pair": "[interval, timeout] (two integers)",
    }[kind]


def _build(path: Path | None, v: dict[str, Any]) -> AgentConfig:
    base = path.parent if path is not None else Path.cwd()

    def file(key: str) -> Path:
        value = Path(v[key]).expanduser()
        return value if value.is_absolute() else base / value

    node_id = v["node_id"]
    if not node_id:
        raise ConfigError("node_id is required (the node's on-chain id)")
    node_id = str(node_id).lower()
    if not _NODE_ID.match(node_id):
        raise ConfigError("node_id: expected 0x followed by 64 hex digits")
    url = v["control_plane.url"]
    if not url or not str(url).startswith(("http://", "https://")):
        raise ConfigError("control_plane.url is required (http:// or https://)")
    wait = v["control_plane.poll_wait_seconds"]
    if not 1 <= wait <= 60:
        raise ConfigError("control_plane.poll_wait_seconds: between 1 and 60")
    for key in (
        "control_plane.request_timeout_seconds",
        "control_plane.backoff_base_seconds",
        "control_plane.backoff_cap_seconds",
        "control_plane.breaker_reset_seconds",
        "reports.heartbeat_seconds",
        "reports.metrics_seconds",
        "expiry.check_seconds",
    ):
        if v[key] <= 0:
            raise ConfigError(f"{key}: must be positive")
    for key in ("control_plane.retry_attempts", "control_plane.breaker_failures"):
        if v[key] < 1:
            raise ConfigError(f"{key}: at least 1")
    interface = v["wireguard.interface"]
    if not _INTERFACE.match(interface):
        raise ConfigError("wireguard.interface: 1-15 characters of [a-zA-Z0-9_=+.-]")
    if not 1 <= v["wireguard.listen_port"] <= 65535:
        raise ConfigError("wireguard.listen_port: between 1 and 65535")
    if not 1 <= v["wireguard.max_peers_per_command"] <= 10_000:
        raise ConfigError("wireguard.max_peers_per_command: between 1 and 10000")
    openvpn_dir = file("openvpn.state_dir" if v["openvpn.state_dir"] else "state_dir")
    if not v["openvpn.state_dir"]:
        openvpn_dir /= "openvpn"
    endpoint = parse_endpoint(v["endpoint"]) if v["endpoint"] else None
    health_listen = _health_listen(v["health.listen"], endpoint)
    level = str(v["log_level"]).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("log_level: DEBUG, INFO, WARNING or ERROR")
    return AgentConfig(
        path=path,
        node_id=node_id,
        state_dir=file("state_dir"),
        agent_key_file=file("agent_key_file"),
        log_level=level,
        control_plane=ControlPlaneOptions(
            url=str(url).rstrip("/"),
            poll_wait_seconds=wait,
            request_timeout_seconds=v["control_plane.request_timeout_seconds"],
            retry_attempts=v["control_plane.retry_attempts"],
            backoff_base_seconds=v["control_plane.backoff_base_seconds"],
            backoff_cap_seconds=v["control_plane.backoff_cap_seconds"],
            breaker_failures=v["control_plane.breaker_failures"],
            breaker_reset_seconds=v["control_plane.breaker_reset_seconds"],
        ),
        heartbeat_seconds=v["reports.heartbeat_seconds"],
        metrics_seconds=v["reports.metrics_seconds"],
        expiry_check_seconds=v["expiry.check_seconds"],
        health_listen=health_listen,
        endpoint=endpoint,
        metrics_listen=metrics_listen(v["metrics.listen"], "metrics.listen", health_listen),
        network=_network(v),
        pools=Pools(
            ipv4=_pool(v["pools.ipv4"], ipaddress.IPv4Network),
            ipv6=_pool(v["pools.ipv6"], ipaddress.IPv6Network),
        ),
        wireguard=WireGuardOptions(
            enabled=v["wireguard.enabled"],
            interface=interface,
            listen_port=v["wireguard.listen_port"],
            private_key_file=file("wireguard.private_key_file"),
            configure_interface=v["wireguard.configure_interface"],
            command_prefix=tuple(v["wireguard.command_prefix"]),
            wg_binary=v["wireguard.wg_binary"],
            max_peers_per_command=v["wireguard.max_peers_per_command"],
        ),
        openvpn=_openvpn(
            v,
            file("openvpn.state_dir") if v["openvpn.state_dir"] else file("state_dir") / "openvpn",
        ),
    )


def _openvpn(v: dict[str, Any], state_dir: Path) -> OpenVpnOptions | None:
    if not v["openvpn.enabled"]:
        return None
    for key in ("openvpn.maintenance_interval_seconds", "openvpn.reconcile_interval_seconds"):
        if v[key] <= 0:
            raise ConfigError(f"{key}: must be positive")
    try:
        return OpenVpnOptions(
            state_dir=state_dir,
            openvpn_binary=v["openvpn.openvpn_binary"],
            command_prefix=tuple(v["openvpn.command_prefix"]),
            device=v["openvpn.device"],
            proto=v["openvpn.proto"],
            listen=v["openvpn.listen"] or None,
            push=tuple(v["openvpn.push"]),
            extra_directives=tuple(v["openvpn.extra_directives"]),
            keepalive=(v["openvpn.keepalive"][0], v["openvpn.keepalive"][1]),
            status_interval_seconds=v["openvpn.status_interval_seconds"],
            verb=v["openvpn.verb"],
            crl_policy=CrlPolicy(
                refresh_interval=timedelta(seconds=v["openvpn.crl_refresh_interval_seconds"]),
                warn_before=timedelta(seconds=v["openvpn.crl_warn_before_seconds"]),
                critical_before=timedelta(seconds=v["openvpn.crl_critical_before_seconds"]),
            ),
            maintenance_interval_seconds=v["openvpn.maintenance_interval_seconds"],
            reconcile_interval_seconds=v["openvpn.reconcile_interval_seconds"],
        )
    except ValueError as exc:
        raise ConfigError(f"openvpn.{exc}") from exc


def _network(v: dict[str, Any]) -> NetworkOptions:
    egress = v["network.egress_interface"]
    if egress and not _INTERFACE.match(egress):
        raise ConfigError("network.egress_interface: 1-15 characters of [a-zA-Z0-9_=+.-]")
    table = v["network.nft_table"]
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", table):
        raise ConfigError("network.nft_table: a lower-case letter, then letters, digits, _")
    prefix = v["network.command_prefix"]
    return NetworkOptions(
        manage=v["network.manage"],
        egress_interface=egress or None,
        nat=v["network.nat"],
        keep_network=v["network.keep_network"],
        nft_table=table,
        command_prefix=tuple(v["wireguard.command_prefix"] if prefix is None else prefix),
        wireguard_go_binary=v["network.wireguard_go_binary"],
    )


def with_network_overrides(
    config: AgentConfig,
    *,
    egress_interface: str | None = None,
    nat: bool | None = None,
    keep_network: bool | None = None,
    manage: bool | None = None,
) -> AgentConfig:
    """`config` with `run`'s command-line options over its [network] section."""
    network = config.network
    if egress_interface is not None and not _INTERFACE.match(egress_interface):
        raise ConfigError("--egress-interface: 1-15 characters of [a-zA-Z0-9_=+.-]")
    network = replace(
        network,
        egress_interface=egress_interface or network.egress_interface,
        nat=network.nat if nat is None else nat,
        keep_network=network.keep_network if keep_network is None else keep_network,
        manage=network.manage if manage is None else manage,
    )
    return replace(config, network=network)


def with_metrics_listen(config: AgentConfig, value: str | None) -> AgentConfig:
    """`config` with `run --metrics-listen` over its `metrics.listen` (None: as configured)."""
    if value is None:
        return config
    return replace(
        config, metrics_listen=metrics_listen(value, "--metrics-listen", config.health_listen)
    )


def metrics_listen(value: str, what: str, health: tuple[str, int] | None) -> tuple[str, int] | None:
    """The metrics endpoint's address, refused on the health endpoint's port: that port is
    the prober's and public, the metrics are the operator's."""
    listen = parse_host_port(value, what)
    if listen is not None and health is not None and listen[1] == health[1]:
        raise ConfigError(
            f"{what}: port {listen[1]} is the health endpoint's (health.listen), which the "
            "prober reaches from outside; give the metrics a port of their own, e.g. 9464"
        )
    return listen


_PORT = re.compile(r"[0-9]{1,5}")
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def parse_host_port(value: str, what: str) -> tuple[str, int] | None:
    """`HOST:PORT` -> (host, port) to bind; empty -> None (off). HOST is an IPv4 address, an
    IPv6 address in brackets or a host name; PORT is 1-65535 (a scraper needs a fixed one).
    Anything else is refused with what is wrong, never guessed at."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")

    def refuse(problem: str) -> ConfigError:
        return ConfigError(
            f"{what}: expected HOST:PORT such as 127.0.0.1:9464 or [::]:9464, got {value!r} "
            f"({problem})"
        )

    if "/" in value:
        raise refuse("an address, not a URL: no scheme, no path")
    if not sep or not host:
        raise refuse("no host" if sep else "no port")
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise refuse("the port must be a number from 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            raise refuse(f"{host[1:-1]!r} is not an IPv6 address") from None
    if ":" in host or "[" in host or "]" in host:
        raise refuse("an IPv6 address goes in brackets, e.g. [::1]:9464")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host)), int(port)
        except ValueError:
            raise refuse(f"{host!r} is not an IPv4 address") from None
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise refuse(f"{host!r} is not an address or a host name")
    return host, int(port)


def parse_endpoint(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) as the node registered it."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"endpoint: expected host:port, got {value!r}")
    if not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", host):
        raise ConfigError(f"endpoint: {host!r} is not a host name or address")
    return host, int(port)


def _health_listen(value: str, endpoint: tuple[str, int] | None) -> tuple[str, int] | None:
    """`endpoint` -> every address on the endpoint's port (where the prober looks), or None
    while no endpoint is configured (`run` and `selftest` say so); else as parse_listen."""
    if value == "endpoint":
        # "": every address of both families (asyncio binds 0.0.0.0 and :: apart; a "::"
        # socket is IPv6-only there, and IPv4 probers would find nothing).
        return ("", endpoint[1]) if endpoint is not None else None
    return parse_listen(value)


def is_loopback_listen(listen: tuple[str, int] | None) -> bool:
    """Whether a health address only this host can reach (the prober never gets there)."""
    if listen is None:
        return False
    host = listen[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str) -> tuple[str, int] | None:
    """`host:port` (IPv6 in brackets) -> (host, port); empty -> None (disabled)."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"health.listen: expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _pool(value: str, kind: type[_Net]) -> _Net | None:
    if not value:
        return None
    version = 4 if kind is ipaddress.IPv4Network else 6
    try:
        return kind(value, strict=True)
    except ValueError as exc:
        raise ConfigError(f"pools.ipv{version}: not an IPv{version} network ({exc})") from exc
