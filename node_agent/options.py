"""Every option of the agent's configuration, declared once: its TOML key, type, default and
meaning. config.py parses by this table; node_agent/README.md lists each (a test checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ENV_PREFIX = "NODUS_AGENT_"
Kind = Literal["str", "int", "float", "bool", "path", "list", "command", "pair"]


@dataclass(frozen=True, slots=True)
class Option:
    key: str  # "section.name" or "name" (top level)
    kind: Kind
    default: Any
    doc: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.replace(".", "_").upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "node_id", "str", None, "The node's on-chain id (bytes32, 0x + 64 hex digits). Required."
    ),
    Option(
        "state_dir",
        "path",
        "/var/lib/nodus-agent",
        "Where the agent keeps state.json (the last applied peer set) and status.json.",
    ),
    Option(
        "agent_key_file",
        "path",
        "/etc/nodus-agent/agent-key",
        "The agent's Ethereum key: an encrypted keystore JSON (needs NODUS_AGENT_PASSPHRASE) "
        "or a 0600 file holding the raw hex key.",
    ),
    Option("log_level", "str", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Option("control_plane.url", "str", None, "The control plane's base URL. Required."),
    Option(
        "control_plane.poll_wait_seconds",
        "int",
        30,
        "How long one long-poll of /v1/agent/peers waits for a change (1-60).",
    ),
    Option(
        "control_plane.request_timeout_seconds",
        "float",
        10.0,
        "Connect/read/write timeout of a request (a long-poll adds its wait to the read).",
    ),
    Option(
        "control_plane.retry_attempts",
        "int",
        3,
        "Attempts per request on network errors, 429 and 5xx, with full-jitter backoff.",
    ),
    Option("control_plane.backoff_base_seconds", "float", 0.5, "First backoff step."),
    Option(
        "control_plane.backoff_cap_seconds",
        "float",
        30.0,
        "Upper bound of a backoff delay (retries and the poll loop after failures).",
    ),
    Option(
        "control_plane.breaker_failures",
        "int",
        5,
        "Consecutive failures that open the circuit breaker (requests then fail at once).",
    ),
    Option(
        "control_plane.breaker_reset_seconds",
        "float",
        30.0,
        "How long the breaker stays open before one trial request.",
    ),
    Option("reports.heartbeat_seconds", "float", 15.0, "Heartbeat period."),
    Option(
        "reports.metrics_seconds",
        "float",
        60.0,
        "Per-peer metrics period (only peers whose counters or handshake changed are sent).",
    ),
    Option(
        "expiry.check_seconds",
        "float",
        30.0,
        "Besides the timer to the next expiry, how often the agent re-checks expiries and "
        "reconciles the interface with the applied set (catches drift).",
    ),
    Option(
        "endpoint",
        "str",
        "",
        "The node's public host:port as registered (the prober fetches "
        'http://host:port/health over TCP). `health.listen = "endpoint"` listens on its port.',
    ),
    Option(
        "health.listen",
        "str",
        "endpoint",
        "host:port of the health endpoint (GET /health). `endpoint`: every address on the "
        "endpoint's port, where the prober looks. Empty disables it.",
    ),
    Option(
        "metrics.listen",
        "str",
        "",
        "host:port of the Prometheus endpoint (GET /metrics), e.g. 127.0.0.1:9464 or "
        "[::]:9464; never the health port. Empty (the default): no metrics endpoint. "
        "`nodus-agent run --metrics-listen` overrides it.",
    ),
    Option(
        "pools.ipv4",
        "str",
        "",
        "The node's IPv4 device pool (e.g. 10.8.0.0/16): peers outside it are refused. "
        "`nodus-agent pools` fetches it from the control plane and pins it here. Empty: the "
        "agent refuses to run.",
    ),
    Option("pools.ipv6", "str", "", "The node's IPv6 device pool (e.g. fd12::/112); as above."),
    Option("wireguard.enabled", "bool", True, "Manage a WireGuard interface."),
    Option(
        "wireguard.interface",
        "str",
        "nodus0",
        "The interface (kernel or wireguard-go; wireguard-go names are unique per machine).",
    ),
    Option("wireguard.listen_port", "int", 51820, "UDP port the interface listens on."),
    Option(
        "wireguard.private_key_file",
        "path",
        "/etc/nodus-agent/wireguard.key",
        "The interface's private key (base64, 0600).",
    ),
    Option(
        "wireguard.configure_interface",
        "bool",
        True,
        "Set the private key and listen port on the interface when they differ (at start and "
        "on every reconcile). False: leave them to the operator.",
    ),
    Option(
        "wireguard.command_prefix",
        "list",
        [],
        'Prepended to every `wg` command, e.g. ["ip", "netns", "exec", "vpn"] to manage an '
        "interface in a network namespace (tests, or ops). In the environment: a shell-quoted "
        "string.",
    ),
    Option("wireguard.wg_binary", "str", "wg", "The `wg` executable."),
    Option(
        "wireguard.max_peers_per_command",
        "int",
        1000,
        "Peers per `wg set` process (a larger change is applied in several; one `wg set` with "
        "20,000 peers fails with 'Argument list too long').",
    ),
    Option(
        "network.manage",
        "bool",
        True,
        "Set up the node's network on `run`: create the WireGuard interface if missing (kernel "
        "module, else wireguard-go), address it, bring it up, enable forwarding, install NAT.",
    ),
    Option(
        "network.egress_interface",
        "str",
        "",
        "The interface the subscribers' traffic leaves by (NAT). Empty: the default route's.",
    ),
    Option("network.nat", "bool", True, "Masquerade the node's pools out of the egress."),
    Option(
        "network.keep_network",
        "bool",
        False,
        "On stop, leave the interface, forwarding, NAT and the OpenVPN server as they are.",
    ),
    Option("network.nft_table", "str", "nodus_agent", "The nftables table (inet) the agent owns."),
    Option(
        "network.command_prefix",
        "command",
        None,
        "Prepended to ip, sysctl, nft and wireguard-go. Default: wireguard.command_prefix.",
    ),
    Option("network.wireguard_go_binary", "str", "wireguard-go", "The wireguard-go executable."),
    Option(
        "openvpn.enabled",
        "bool",
        None,
        "Serve OpenVPN. Default: true when the file has an `[openvpn]` table, else false.",
    ),
    Option(
        "openvpn.state_dir",
        "path",
        "",
        "Server config, PKI, client entries, management socket, status and log (default "
        "<state_dir>/openvpn; at most ~80 characters: the socket path is limited).",
    ),
    Option("openvpn.openvpn_binary", "str", "openvpn", "The `openvpn` executable."),
    Option(
        "openvpn.command_prefix",
        "command",
        [],
        'Prepended to the openvpn command, e.g. ["ip", "netns", "exec", "vpn"]; it must exec. '
        "A list, or a shell-quoted string.",
    ),
    Option("openvpn.device", "str", "nodus-ovpn0", "The tun interface's name (1-15 chars)."),
    Option("openvpn.proto", "str", "udp", "udp (dual stack), udp4, udp6 or tcp-server."),
    Option("openvpn.listen", "str", "", "The address to bind (empty: all)."),
    Option(
        "openvpn.push",
        "list",
        ["redirect-gateway def1 ipv6"],
        'Options pushed to clients; add "dhcp-option DNS <ip>" for DNS. In the environment: '
        "a shell-quoted string.",
    ),
    Option(
        "openvpn.extra_directives", "list", [], "Server directives appended verbatim, one each."
    ),
    Option(
        "openvpn.keepalive",
        "pair",
        [10, 60],
        '[interval, timeout] seconds (in the environment: "10 60").',
    ),
    Option(
        "openvpn.status_interval_seconds", "int", 5, "How often OpenVPN rewrites its status file."
    ),
    Option("openvpn.verb", "int", 3, "OpenVPN's log verbosity."),
    Option(
        "openvpn.maintenance_interval_seconds", "float", 2.0, "Expiry, liveness and CRL checks."
    ),
    Option("openvpn.reconcile_interval_seconds", "float", 10.0, "Sessions no entry admits: cut."),
    Option("openvpn.crl_refresh_interval_seconds", "float", 3600.0, "Re-fetch the CRL this often."),
    Option(
        "openvpn.crl_warn_before_seconds", "float", 172800.0, "Warn this long before it expires."
    ),
    Option(
        "openvpn.crl_critical_before_seconds",
        "float",
        43200.0,
        "Shout this long before it expires (OpenVPN refuses every client once it has).",
    ),
)
