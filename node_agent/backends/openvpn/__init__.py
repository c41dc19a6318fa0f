"""The OpenVPN backend: one OpenVPN 2.6 server kept in step with the node's desired peer set.

What it does:
- writes the server configuration from the control plane's material (`GET /v1/agent/openvpn`:
  the node's CA, server certificate and key, tls-crypt key, CRL, port and pools), starts
  `openvpn` (optionally behind a command prefix such as `ip netns exec <ns>`), restarts it if it
  dies, and adopts a server it started before (an agent restart does not drop the clients);
- admits clients by certificate serial: `clients/<serial>.conf` holds each desired peer's fixed
  addresses (`ifconfig-push`, `ifconfig-ipv6-push`) and expiry. OpenVPN's own
  `client-config-dir` looks files up by common name, but the control plane names each
  certificate after its config id, which the peer feed does not carry; the feed's identity is
  the serial, as in the CRL. So a small client-connect script reads `tls_serial_hex_0`, refuses
  a serial without a file (or past its expiry, even if the agent is gone) and hands OpenVPN the
  file's directives;
- `apply(peers)` writes and removes only the files that differ; a removed (or expired) peer's
  live session is cut at once through the management socket (`client-kill <cid> HALT`: the
  client exits instead of retrying) and the CRL is refreshed so its certificate is refused at the
  TLS handshake;
- keeps the CRL fresh: re-fetched hourly, after every removal, and once half its lifetime has
  passed, with backoff and jitter on failure; it gets loud (warning, then error, then critical)
  as nextUpdate nears, because OpenVPN refuses every client once the CRL has expired. A CRL is
  checked (signed by the node's CA, not expired, not older than the one in place) before it
  replaces the file, atomically; OpenVPN re-reads it on every new TLS session;
- `stats()` reads the status file (`CLIENT_LIST` bytes and connected-since, `ROUTING_TABLE` last
  activity) and maps sessions to serials by their pushed address.

The backend never imports the control plane: it gets its material through the agent's one
`ControlPlaneClient` (`ClientMaterialSource`), or any `MaterialSource`. Its options are the
`[openvpn]` section of the agent's config (`node_agent.config.OpenVpnOptions`).

The package follows the backend's sections: material (and its source), crl, clients, status,
management, files (paths and the server configuration), process, templates, backend.
"""

from node_agent.backends.openvpn.backend import OpenVpnBackend, OpenVpnHealth
from node_agent.backends.openvpn.clients import (
    ClientEntry,
    ClientPlan,
    desired_entries,
    entry_for,
    parse_client_entry,
    plan_clients,
    render_client_entry,
)
from node_agent.backends.openvpn.crl import CrlDecision, CrlLevel, crl_decision, retry_delay
from node_agent.backends.openvpn.files import Paths, render_server_config
from node_agent.backends.openvpn.management import ManagementError, ManagementSession
from node_agent.backends.openvpn.material import (
    ClientMaterialSource,
    CrlInfo,
    InvalidMaterial,
    MaterialSource,
    MaterialUnavailable,
    OpenVpnMaterial,
    check_material,
    crl_info,
    is_newer_crl,
    normalize_serial,
)
from node_agent.backends.openvpn.status import StatusSnapshot, parse_status, stats_from
from node_agent.config import CrlPolicy, OpenVpnOptions

__all__ = [
    "ClientEntry",
    "ClientMaterialSource",
    "ClientPlan",
    "CrlDecision",
    "CrlInfo",
    "CrlLevel",
    "CrlPolicy",
    "InvalidMaterial",
    "ManagementError",
    "ManagementSession",
    "MaterialSource",
    "MaterialUnavailable",
    "OpenVpnBackend",
    "OpenVpnHealth",
    "OpenVpnMaterial",
    "OpenVpnOptions",
    "Paths",
    "StatusSnapshot",
    "check_material",
    "crl_decision",
    "crl_info",
    "desired_entries",
    "entry_for",
    "is_newer_crl",
    "normalize_serial",
    "parse_client_entry",
    "parse_status",
    "plan_clients",
    "render_client_entry",
    "render_server_config",
    "retry_delay",
    "stats_from",
]
