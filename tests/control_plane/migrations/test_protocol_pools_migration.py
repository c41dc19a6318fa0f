"""Migration 0004 (disjoint ranges per protocol) on data an earlier release stored: on a node
serving both protocols, each live config in the other protocol's half moves to the lowest free
index of its own half and the node's revision is bumped; a node serving WireGuard only, a
config already in its half and a revoked one are left alone."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import asyncpg

from control_plane.migrate import upgrade
from tests.database import admin_database_url, scratch_database

POOL4, POOL6 = "10.8.0.0/16", "fd00:8::/112"
# name: (node, protocol, ipv4, ipv6, revoked)
STORED = {
    "wireguard in the upper half": ("both", "wireguard", "10.8.200.5", "fd00:8::c805", False),
    "openvpn in the lower half": ("both", "openvpn", "10.8.0.9", "fd00:8::9", False),
    "openvpn in its half": ("both", "openvpn", "10.8.128.2", "fd00:8::8002", False),
    "wireguard in its half": ("both", "wireguard", "10.8.0.2", "fd00:8::2", False),
    "revoked openvpn in the lower half": ("both", "openvpn", "10.8.0.3", "fd00:8::3", True),
    "wireguard-only node, upper half": ("wg", "wireguard", "10.8.200.5", "fd00:8::c805", False),
}


async def _seed_and_migrate(url: str) -> tuple[dict[str, tuple[str, str]], dict[str, int]]:
    await upgrade(url, "0003")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    nodes = {"both": "0x" + secrets.token_hex(32), "wg": "0x" + secrets.token_hex(32)}
    ids: dict[str, uuid.UUID] = {}
    try:
        for key, protocols in (("both", ["wireguard", "openvpn"]), ("wg", ["wireguard"])):
            await conn.execute(
                "INSERT INTO nodes (id, operator, protocols, endpoint, country, ipv4_pool,"
                " ipv6_pool, revision) VALUES ($1, $2, $3, 'vpn.example.net:51820', 'DE',"
                " $4, $5, 7)",
                nodes[key],
                "0x" + "11" * 20,
                protocols,
                POOL4,
                POOL6,
            )
        for name, (node, protocol, ipv4, ipv6, revoked) in STORED.items():
            ids[name] = uuid.uuid4()
            await conn.execute(
                "INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key,"
                " cert_serial, ipv4, ipv6, revoked_at) VALUES ($1, $2, $3, $4, $5, $6,"
                " $7::inet, $8::inet, CASE WHEN $9 THEN now() END)",
                ids[name],
                nodes[node],
                "0x" + "22" * 20,
                protocol,
                secrets.token_hex(22) if protocol == "wireguard" else None,
                secrets.token_hex(8) if protocol == "openvpn" else None,
                ipv4,
                ipv6,
                revoked,
            )
        await conn.close()
        await upgrade(url)
        conn = await asyncpg.connect(dsn)
        rows = await conn.fetch("SELECT id, host(ipv4) AS v4, host(ipv6) AS v6 FROM device_configs")
        revisions = await conn.fetch("SELECT id, revision FROM nodes")
    finally:
        await conn.close()
    by_id = {row["id"]: (row["v4"], row["v6"]) for row in rows}
    by_node = {row["id"]: row["revision"] for row in revisions}
    return (
        {name: by_id[config_id] for name, config_id in ids.items()},
        {key: by_node[node_id] for key, node_id in nodes.items()},
    )


def test_configs_move_into_their_protocols_half_on_nodes_serving_both() -> None:
    with admin_database_url() as admin_url, scratch_database(admin_url) as url:
        addresses, revisions = asyncio.run(_seed_and_migrate(url))

    # The lowest free index of each half: the lower half's 2 is taken, the upper half's 2 too.
    assert addresses["wireguard in the upper half"] == ("10.8.0.3", "fd00:8::3")
    assert addresses["openvpn in the lower half"] == ("10.8.128.3", "fd00:8::8003")
    assert addresses["openvpn in its half"] == ("10.8.128.2", "fd00:8::8002")
    assert addresses["wireguard in its half"] == ("10.8.0.2", "fd00:8::2")
    assert addresses["revoked openvpn in the lower half"] == ("10.8.0.3", "fd00:8::3")
    assert addresses["wireguard-only node, upper half"] == ("10.8.200.5", "fd00:8::c805")
    assert revisions == {"both": 8, "wg": 7}
