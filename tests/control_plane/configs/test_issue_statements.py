"""The issuance's round trips to PostgreSQL, counted: a regression guard on the hot path (each
statement costs the server CPU in the driver and SQLAlchemy, and a round trip of latency)."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import event

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
