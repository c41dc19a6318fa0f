"""The issuance's round trips to PostgreSQL, counted: a regression guard on the hot path (each
statement costs the server CPU in the driver and SQLAlchemy, and a round trip of latency)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import event, text

from control_plane.configs.repository import _INSERT_AT_FREE_ADDRESS
from control_plane.settings import Settings
from tests.control_plane.configs.test_issue import issue, wireguard


async def test_an_issue_for_a_known_subscriber_is_two_statements(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
) -> None:
    """The subscriber's device lock with every read, then the insert with its checks and the
    node's revision bump at commit (plus the transaction's BEGIN and COMMIT, which are not
    statements of ours). The first issue records the subscriber's expiry; the second is the
    common path."""
    assert (await issue(client, settings, subscriber, wireguard(node))).status_code == 201
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))  # (connection, cursor, statement, ...)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await issue(client, settings, subscriber, wireguard(node))
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert response.status_code == 201, response.text
    assert len(statements) == 2, statements
    assert "pg_advisory_xact_lock" in statements[0]
    assert "INSERT INTO device_configs" in statements[1]
    assert "INSERT INTO revision_bumps" in statements[1]  # the bump, done at commit


# Other subscribers' configs on another node, which one subscriber's device limit must not read.
# Seeded into a table whose statistics lag behind (as after a burst of issuances, before any
# ANALYZE), so the planner cannot tell a subscriber's rows from the table's.
_COPY_NODE = (
    "CREATE TEMPORARY TABLE other_node ON COMMIT DROP AS "
    "SELECT * FROM nodes WHERE id = CAST(:node_id AS varchar)",
    "UPDATE other_node SET id = CAST(:other_id AS varchar)",
    "INSERT INTO nodes SELECT * FROM other_node",
)
_SEED_OTHERS = text(
    """
    INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key, ipv4, ipv6)
    SELECT gen_random_uuid(), CAST(:node_id AS varchar),
           '0x' || lpad(to_hex(i), 40, '0'), 'wireguard', NULL,
           CAST('10.200.0.0' AS inet) + i, CAST('fd00:200::' AS inet) + i
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i
    """
)


async def _blocks_touched(app: FastAPI, node: str, subscriber: str) -> int:
    """Shared buffers the issuance's insert touches (EXPLAIN ANALYZE, rolled back): a count of
    pages read, which does not depend on the machine's speed."""
    params = {
        "id": uuid.uuid4(),
        "node_id": node,
        "subscriber": subscriber,
        "protocol": "wireguard",
        "public_key": wireguard(node)["public_key"],
        "cert_serial": None,
        "cert_not_after": None,
        "certificate": None,
        "ipv4_network": "10.8.0.0",
        "ipv6_network": "fd00:8::",
        "indexes": [40_001, 40_002, 40_003],
        "device_limit": 40,
    }
    explain = text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _INSERT_AT_FREE_ADDRESS.text)
    async with app.state.sessions() as session, session.begin():
        plan = (await session.execute(explain, params)).scalar_one()
        await session.rollback()
    root = plan[0]["Plan"]
    return int(root["Shared Hit Blocks"]) + int(root["Shared Read Blocks"])


async def test_the_device_limit_reads_the_subscribers_own_configs_not_the_tables(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
) -> None:
    """An issuance's work does not grow with other subscribers' configs: with 20,000 live
    configs of others it touches about as many pages as with 100. (Before migration 0010 the
    planner, with statistics behind the table, counted the subscriber's live configs by reading
    every live config: 11 ms per issuance at 42,000, and a soak at 134 issuances a second fell
    behind after 6 minutes.)"""
    assert (await issue(client, settings, subscriber, wireguard(node))).status_code == 201
    other = "0x" + "ab" * 32
    async with app.state.sessions() as session, session.begin():
        for statement in _COPY_NODE:
            await session.execute(text(statement), {"node_id": node, "other_id": other})
        await session.execute(_SEED_OTHERS, {"node_id": other, "first": 1, "last": 100})
    wallet = subscriber.address.lower()
    few = await _blocks_touched(app, node, wallet)
    async with app.state.sessions() as session, session.begin():
        await session.execute(_SEED_OTHERS, {"node_id": other, "first": 101, "last": 20_000})
    many = await _blocks_touched(app, node, wallet)

    assert many < 2 * few + 20, (few, many)
