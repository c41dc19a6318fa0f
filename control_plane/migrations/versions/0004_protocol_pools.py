"""disjoint ranges per protocol: WireGuard the lower half of each pool, OpenVPN the upper half

Until now both protocols allocated anywhere in the node's pools, so on a node serving both the
WireGuard and the OpenVPN interface installed the same connected route and one protocol's
replies went into the other's interface. From this revision each protocol allocates in its own
half (control_plane/tunnel/addresses.py `Pools.for_protocol`): WireGuard in the lower half
(`10.x.0.0/17`, `fdxx::/113` of a /16 and a /112), OpenVPN in the upper half (`10.x.128.0/17`,
`fdxx::8000/113`); OpenVPN's `server` directives and the node's own addresses follow.

For every live node that serves OpenVPN, each live config whose addresses lie in the other
protocol's half moves to the lowest free host index of its own half (IPv4 and IPv6 keep sharing
one index), and the node's revision is bumped so its agent applies the moved peers:
- an OpenVPN device needs nothing: the server pushes its addresses, the next connection gets
  the new ones;
- a WireGuard device has its address in its own config file: its subscriber downloads the
  config again (GET /v1/configs/{id} renders the new address). Such a device could not reach
  the internet reliably before (its replies could go into OpenVPN's tun).
Nodes serving WireGuard only are left alone: their agent gives the interface the whole pool
while the node runs no OpenVPN, so their devices anywhere in the pool keep working.

The move cannot be undone; downgrade leaves the addresses where they are.

Revision ID: 0004
Revises: 0003
"""

import ipaddress
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_DEVICE_INDEX = 2  # 0: the half's network, 1: the node's own address on that interface

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _half(pool: Network, protocol: str) -> Network:
    lower, upper = pool.subnets(prefixlen_diff=1)
    return lower if protocol == "wireguard" else upper


def _last_index(ipv4: ipaddress.IPv4Network, ipv6: ipaddress.IPv6Network) -> int:
    return min(ipv4.num_addresses - 2, ipv6.num_addresses - 1)


def upgrade() -> None:
    connection = op.get_bind()
    nodes = connection.execute(
        sa.text(
            "SELECT id, ipv4_pool::text, ipv6_pool::text FROM nodes "
            "WHERE deleted_at IS NULL AND 'openvpn' = ANY(protocols)"
        )
    ).all()
    for node_id, ipv4_text, ipv6_text in nodes:
        pool4, pool6 = ipaddress.IPv4Network(ipv4_text), ipaddress.IPv6Network(ipv6_text)
        configs = connection.execute(
            sa.text(
                "SELECT id, protocol, host(ipv4), host(ipv6) FROM device_configs "
                "WHERE node_id = :node AND revoked_at IS NULL ORDER BY id"
            ),
            {"node": node_id},
        ).all()
        taken: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for _, _, address4, address6 in configs:
            taken |= {ipaddress.IPv4Address(address4), ipaddress.IPv6Address(address6)}
        moved = 0
        for config_id, protocol, address, _ in configs:
            half4 = _half(pool4, protocol)
            if ipaddress.IPv4Address(address) in half4:
                continue
            assert isinstance(half4, ipaddress.IPv4Network)
            half6 = _half(pool6, protocol)
            assert isinstance(half6, ipaddress.IPv6Network)
            index = next(
                (
                    i
                    for i in range(FIRST_DEVICE_INDEX, _last_index(half4, half6) + 1)
                    if half4.network_address + i not in taken
                    and half6.network_address + i not in taken
                ),
                None,
            )
            if index is None:  # the half is full: revoke rather than collide
                connection.execute(
                    sa.text("UPDATE device_configs SET revoked_at = now() WHERE id = :id"),
                    {"id": config_id},
                )
                moved += 1
                continue
            new4, new6 = half4.network_address + index, half6.network_address + index
            taken |= {new4, new6}
            connection.execute(
                sa.text(
                    "UPDATE device_configs SET ipv4 = CAST(:ipv4 AS inet), "
                    "ipv6 = CAST(:ipv6 AS inet) WHERE id = :id"
                ),
                {"id": config_id, "ipv4": str(new4), "ipv6": str(new6)},
            )
            moved += 1
        if moved:
            connection.execute(
                sa.text("UPDATE nodes SET revision = revision + 1 WHERE id = :id"),
                {"id": node_id},
            )


def downgrade() -> None:
    """Nothing to undo in the schema; moved addresses stay where they are."""
