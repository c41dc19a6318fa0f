"""WireGuard: public key checks and the client's wg-quick file.

The client's key pair is made on the client: the control plane only ever sees the public key, and
the file it returns carries `PrivateKey = <insert your private key>` for the client to fill.
"""

from __future__ import annotations

import base64
import binascii

from control_plane.tunnel import render_checks

PRIVATE_KEY_PLACEHOLDER = "<insert your private key>"
# What the client's resolver is set to while the tunnel is up (Quad9: filtering off, no logs).
DEFAULT_DNS = ("9.9.9.10", "2620:fe::10")
PERSISTENT_KEEPALIVE_SECONDS = 25


def check_public_key(value: str) -> str:
    """A Curve25519 public key as WireGuard writes it: canonical base64 of 32 bytes, not all
    zero. Returns it unchanged; raises ValueError with a readable reason."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a WireGuard key is base64 (as `wg pubkey` prints it)") from exc
    if len(raw) != 32:
        raise ValueError("a WireGuard key is 32 bytes (44 base64 characters)")
    if base64.b64encode(raw).decode() != value:
        raise ValueError("a WireGuard key must be in canonical base64 (as `wg pubkey` prints it)")
    if raw == bytes(32):
        raise ValueError("the all-zero key is not a public key")
    return value


def client_config(
    *,
    address: list[str],
    server_public_key: str,
    endpoint: str,
    dns: tuple[str, ...] = DEFAULT_DNS,
) -> str:
    """The client's wg-quick file: its addresses, the node as its only peer, all traffic through
    the tunnel (IPv4 and IPv6), a keepalive that holds NAT mappings open. Every interpolated
    value is checked against its grammar first (`render_checks.UnsafeConfigValue` otherwise):
    a stored value can never add a line, a section or a hook."""
    if not address or not dns:
        raise render_checks.UnsafeConfigValue("a config needs addresses and DNS servers")
    addresses = [render_checks.interface_address(a) for a in address]
    servers = [render_checks.ip_address(d) for d in dns]
    return "\n".join(
        [
            "[Interface]",
            f"PrivateKey = {PRIVATE_KEY_PLACEHOLDER}",
            f"Address = {', '.join(addresses)}",
            f"DNS = {', '.join(servers)}",
            "",
            "[Peer]",
            f"PublicKey = {render_checks.wireguard_key(server_public_key)}",
            f"Endpoint = {render_checks.endpoint(endpoint)}",
            "AllowedIPs = 0.0.0.0/0, ::/0",
            f"PersistentKeepalive = {PERSISTENT_KEEPALIVE_SECONDS}",
            "",
        ]
    )
