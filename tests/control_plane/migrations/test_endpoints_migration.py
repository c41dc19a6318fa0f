"""Migration 0002 (endpoint grammar) re-checks the nodes an earlier release stored: a live node
whose endpoint or country is outside the grammar is taken out of service; valid and deleted
nodes are left alone."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from control_plane.migrate import upgrade
from tests.database import admin_database_url, scratch_database

STORED = {
    "zone id hook": ("[fe80::1%x\n[Interface]\nPreUp = touch pwned; false\n#]:51820", "DE"),
    "trailing newline name": ("vpn\n.example.net:51820", "DE"),
    "newline before port": ("198.18.7.1\n:51820", "DE"),
    "bad country": ("vpn.example.net:51821", "X\n"),
    "valid name": ("vpn.example.net:51820", "DE"),
    "valid ipv6": ("[2001:db8::7]:51820", "NL"),
}


async def _seed_and_migrate(url: str) -> dict[str, tuple[bool, str | None]]:
    await upgrade(url, "0001")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    ids: dict[str, str] = {}
    try:
        for name, (endpoint, country) in STORED.items():
            ids[name] = "0x" + secrets.token_hex(32)
            await conn.execute(
                "INSERT INTO nodes (id, operator, protocols, endpoint, country, ipv4_pool,"
                " ipv6_pool, revision) VALUES ($1, $2, ARRAY['wireguard'], $3, $4,"
                " '10.8.0.0/16', 'fd00:8::/112', 0)",
                ids[name],
                "0x" + "11" * 20,
                endpoint,
                country,
            )
        deleted = "0x" + secrets.token_hex(32)
        await conn.execute(
            "INSERT INTO nodes (id, operator, protocols, endpoint, country, ipv4_pool,"
            " ipv6_pool, revision, deleted_at) VALUES ($1, $2, ARRAY['wireguard'],"
            " 'x\ny:1', 'DE', '10.9.0.0/16', 'fd00:9::/112', 0, now())",
            deleted,
            "0x" + "11" * 20,
        )
        ids["deleted"] = deleted
        await conn.close()
        await upgrade(url)
        conn = await asyncpg.connect(dsn)
        rows = await conn.fetch("SELECT id, suspended_at, suspended_reason FROM nodes")
    finally:
        await conn.close()
    by_id = {row["id"]: (row["suspended_at"] is not None, row["suspended_reason"]) for row in rows}
    return {name: by_id[node_id] for name, node_id in ids.items()}


def test_stored_nodes_outside_the_grammar_are_taken_out_of_service() -> None:
    with admin_database_url() as admin_url, scratch_database(admin_url) as url:
        result = asyncio.run(_seed_and_migrate(url))

    for name in ("zone id hook", "trailing newline name", "newline before port"):
        suspended, reason = result[name]
        assert suspended, name
        assert reason is not None
        assert "endpoint" in reason
    assert result["bad country"][0]
    assert result["bad country"][1] is not None
    assert "country" in result["bad country"][1]
    assert result["valid name"] == (False, None)
    assert result["valid ipv6"] == (False, None)
    assert result["deleted"] == (False, None)
