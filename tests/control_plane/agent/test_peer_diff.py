"""GET /v1/agent/peers?diff=true: the changes since the agent's revision when the peer log has
them all (same history, not compacted past it), else the whole set; the old shape without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from control_plane.db import unit_of_work
from control_plane.jobs import Services
from control_plane.revisions import HISTORY_REVISIONS, bump_revision
from control_plane.settings import Settings
from control_plane.subscriptions.expiry import expire_lapsed
from tests.control_plane.agent.conftest import World, node_token

PEERS = "/v1/agent/peers"


async def poll(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    """One poll; with `since`, a long-poll (the change's NOTIFY may still be on its way)."""
    if "since" in params:
        params = {"wait": 30, **params}
    response = await client.get(PEERS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def keys(peers: list[dict[str, Any]]) -> list[str]:
    return [str(p.get("public_key") or p["cert_serial"]) for p in peers]


async def test_without_diff_the_answer_keeps_its_old_shape(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    await world.config(node, await world.subscriber())
    headers = node_token(settings, node)

    full = await poll(client, headers)
    behind = await poll(client, headers, since=0)

    assert set(full) == set(behind) == {"revision", "changed", "peers"}
    assert full == behind


async def test_a_diff_carries_the_issued_the_revoked_and_the_lapsed(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    paying, lapsing = await world.subscriber(), await world.subscriber()
    kept = await world.config(node, paying)
    revoked = await world.config(node, paying)
    lapses = await world.config(node, lapsing, protocol="openvpn")
    headers = node_token(settings, node)
    base = await poll(client, headers, diff="true")
    assert base["revision"] == 3
    assert "diff_since" not in base
    assert keys(base["peers"]) == [kept.public_key, revoked.public_key, lapses.cert_serial]

    added = await world.config(node, paying)
    after_add = await poll(client, headers, since=3, diff="true", history=base["history"])
    await world.revoke(revoked)
    after_revoke = await poll(client, headers, since=4, diff="true", history=base["history"])
    async with world.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE subscribers SET expires_at = :past WHERE address = :address"),
            {"past": datetime.now(UTC) - timedelta(days=1), "address": lapsing},
        )
    services: Services = app.state.services
    async with unit_of_work(services.sessions) as session:
        await expire_lapsed(services, session)
    after_lapse = await poll(client, headers, since=5, diff="true", history=base["history"])
    all_at_once = await poll(client, headers, since=3, diff="true", history=base["history"])

    assert after_add["revision"] == 4
    assert after_add["diff_since"] == 3
    assert after_add["history"] == base["history"]
    assert after_add["peers"] == [
        {
            "protocol": "wireguard",
            "public_key": added.public_key,
            "allowed_ips": [f"{added.ipv4}/32", f"{added.ipv6}/128"],
            "expires_at": after_add["peers"][0]["expires_at"],
        }
    ]
    assert after_add["removed"] == []
    assert (after_revoke["revision"], after_revoke["peers"]) == (5, [])
    assert after_revoke["removed"] == [{"protocol": "wireguard", "public_key": revoked.public_key}]
    assert (after_lapse["revision"], after_lapse["peers"]) == (6, [])
    assert after_lapse["removed"] == [{"protocol": "openvpn", "cert_serial": lapses.cert_serial}]
    assert all_at_once["diff_since"] == 3
    assert keys(all_at_once["peers"]) == [added.public_key]
    assert sorted(keys(all_at_once["removed"])) == sorted(
        [str(revoked.public_key), str(lapses.cert_serial)]
    )


async def test_a_renewal_updates_the_peers_expiry_in_the_diff(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    subscriber = await world.subscriber(days=3)
    config = await world.config(node, subscriber)
    headers = node_token(settings, node)
    base = await poll(client, headers, diff="true")

    later = datetime.now(UTC) + timedelta(days=60)
    async with world.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE subscribers SET expires_at = :later WHERE address = :address"),
            {"later": later, "address": subscriber},
        )
        await bump_revision(session, node, [config.id])  # as expiry.bump_nodes_of does
    diff = await poll(client, headers, since=1, diff="true", history=base["history"])

    assert keys(diff["peers"]) == [config.public_key]
    assert datetime.fromisoformat(diff["peers"][0]["expires_at"]) == later
    assert diff["removed"] == []


async def test_too_far_behind_the_compacted_log_gets_the_whole_set(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    subscriber = await world.subscriber()
    first = await world.config(node, subscriber)
    headers = node_token(settings, node)
    base = await poll(client, headers, diff="true")
    async with world.sessions() as session, session.begin():
        for _ in range(HISTORY_REVISIONS + 256):
            await bump_revision(session, node, [])
    second = await world.config(node, subscriber)
    revision = base["revision"] + HISTORY_REVISIONS + 256 + 1

    behind = await poll(
        client, headers, since=base["revision"], diff="true", history=base["history"]
    )
    close = await poll(client, headers, since=revision - 1, diff="true", history=base["history"])

    assert behind["revision"] == close["revision"] == revision
    assert "diff_since" not in behind
    assert "removed" not in behind
    assert keys(behind["peers"]) == [first.public_key, second.public_key]
    assert behind["history"] == base["history"]
    assert close["diff_since"] == revision - 1
    assert keys(close["peers"]) == [second.public_key]


async def test_another_history_gets_the_whole_set(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    subscriber = await world.subscriber()
    config = await world.config(node, subscriber)
    headers = node_token(settings, node)
    base = await poll(client, headers, diff="true")
    async with world.sessions() as session, session.begin():
        await bump_revision(session, node)  # a change not itemized (a node edit): new history

    moved = await poll(client, headers, since=1, diff="true", history=base["history"])
    stranger = await poll(
        client, headers, since=1, diff="true", history="00000000-0000-4000-8000-000000000000"
    )

    assert moved["history"] != base["history"]
    for body in (moved, stranger):
        assert body["revision"] == 2
        assert "diff_since" not in body
        assert keys(body["peers"]) == [config.public_key]


async def test_a_since_ahead_of_the_node_gets_the_whole_set(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    config = await world.config(node, await world.subscriber())
    headers = node_token(settings, node)
    base = await poll(client, headers, diff="true")

    ahead = await poll(client, headers, since=7, diff="true", history=base["history"])

    assert ahead["revision"] == 1
    assert "diff_since" not in ahead
    assert keys(ahead["peers"]) == [config.public_key]


@pytest.mark.parametrize(
    "params",
    [
        {"since": -1, "diff": "true", "history": "00000000-0000-4000-8000-000000000000"},
        {"since": "latest", "diff": "true"},
        {"diff": "true", "history": "00000000-0000-4000-8000-000000000000"},  # no since
        {"since": 0, "history": "00000000-0000-4000-8000-000000000000"},  # no diff=true
        {"since": 0, "diff": "true", "history": "not-a-uuid"},
        {"since": 0, "diff": "maybe"},
    ],
)
async def test_a_bad_diff_request_is_422(
    client: httpx.AsyncClient, settings: Settings, world: World, params: dict[str, Any]
) -> None:
    node = await world.node()
    response = await client.get(PEERS, params=params, headers=node_token(settings, node))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
