"""POST /v1/agent/heartbeat and /v1/agent/metrics: stored for scoring, validated strictly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from control_plane.agent.models import Heartbeat, PeerMetric
from control_plane.nodes.models import Node
from control_plane.settings import Settings
from tests.control_plane.agent.conftest import (
    World,
    new_address,
    new_wireguard_key,
    node_token,
    wallet_token,
)

HEARTBEAT = "/v1/agent/heartbeat"
METRICS = "/v1/agent/metrics"
A_HEARTBEAT = {
    "agent_version": "0.1.0",
    "applied_revision": 1,
    "active_peers": 3,
    "rx_bytes_total": 10_000,
    "tx_bytes_total": 2**63 - 1,
}


async def test_a_heartbeat_is_stored_marks_the_node_and_answers_the_revision(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    await world.config(node, await world.subscriber())
    await world.bump(node)
    before = datetime.now(UTC)

    response = await client.post(HEARTBEAT, json=A_HEARTBEAT, headers=node_token(settings, node))

    assert response.status_code == 200
    assert response.json() == {"revision": 2}  # the agent applied 1: it is behind
    async with world.sessions() as session:
        seen = await session.scalar(select(Node.last_heartbeat_at).where(Node.id == node))
        rows = (await session.scalars(select(Heartbeat).where(Heartbeat.node_id == node))).all()
    assert seen is not None
    assert seen >= before - timedelta(seconds=5)
    assert [(r.agent_version, r.applied_revision, r.active_peers) for r in rows] == [
        ("0.1.0", 1, 3)
    ]
    assert (rows[0].rx_bytes_total, rows[0].tx_bytes_total) == (10_000, 2**63 - 1)


@pytest.mark.parametrize(
    "change",
    [
        {"active_peers": -1},
        {"active_peers": "3"},
        {"active_peers": True},
        {"active_peers": 1.5},
        {"active_peers": 2**31},
        {"rx_bytes_total": 2**63},
        {"applied_revision": None},
        {"agent_version": ""},
        {"agent_version": "x" * 65},
        {"agent_version": "1.0 beta"},
        {"surprise": 1},
    ],
)
async def test_a_bad_heartbeat_is_422(
    client: httpx.AsyncClient, settings: Settings, world: World, change: dict[str, Any]
) -> None:
    node = await world.node()
    response = await client.post(
        HEARTBEAT, json={**A_HEARTBEAT, **change}, headers=node_token(settings, node)
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


async def test_a_heartbeat_missing_a_field_or_not_json_is_422(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    headers = node_token(settings, await world.node())
    partial = {k: v for k, v in A_HEARTBEAT.items() if k != "active_peers"}
    assert (await client.post(HEARTBEAT, json=partial, headers=headers)).status_code == 422
    garbage = await client.post(
        HEARTBEAT, content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert garbage.status_code == 422
    assert (await client.post(HEARTBEAT, json=[1, 2], headers=headers)).status_code == 422


async def test_reports_need_a_node_token(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    await world.node()
    wallet = wallet_token(settings, new_address())
    assert (await client.post(HEARTBEAT, json=A_HEARTBEAT, headers=wallet)).status_code == 403
    assert (await client.post(METRICS, json={"peers": []}, headers=wallet)).status_code == 403
    assert (await client.post(HEARTBEAT, json=A_HEARTBEAT)).status_code == 401


async def test_metrics_are_stored_in_one_insert_for_this_nodes_peers_only(
    client: httpx.AsyncClient,
    settings: Settings,
    world: World,
    record_statements: Callable[[], Any],
) -> None:
    node, other_node = await world.node(), await world.node()
    subscriber = await world.subscriber()
    live = await world.config(node, subscriber)
    revoked = await world.config(node, subscriber)
    await world.revoke(revoked)
    openvpn = await world.config(node, subscriber, protocol="openvpn")
    elsewhere = await world.config(other_node, subscriber)
    handshake = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    report = {
        "peers": [
            {
                "public_key": live.public_key,
                "last_handshake_at": handshake.isoformat(),
                "rx_bytes": 100,
                "tx_bytes": 200,
            },
            {"public_key": revoked.public_key, "rx_bytes": 1, "tx_bytes": 2},
            {"cert_serial": openvpn.cert_serial, "rx_bytes": 5, "tx_bytes": 6},
            {"public_key": elsewhere.public_key, "rx_bytes": 7, "tx_bytes": 8},
            {"public_key": new_wireguard_key(), "rx_bytes": 9, "tx_bytes": 10},
        ]
    }

    with record_statements() as log:
        response = await client.post(METRICS, json=report, headers=node_token(settings, node))

    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "ignored": 2}
    assert len([s for s in log.sql if s.lstrip().upper().startswith("INSERT")]) == 1
    async with world.sessions() as session:
        rows = (await session.scalars(select(PeerMetric).order_by(PeerMetric.rx_bytes))).all()
    assert [(r.node_id, r.public_key, r.cert_serial, r.rx_bytes, r.tx_bytes) for r in rows] == [
        (node, revoked.public_key, None, 1, 2),
        (node, None, openvpn.cert_serial, 5, 6),
        (node, live.public_key, None, 100, 200),
    ]
    assert rows[2].last_handshake_at == handshake
    assert rows[0].last_handshake_at is None


async def test_a_report_of_ten_thousand_peers_is_stored(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    config = await world.config(node, await world.subscriber())
    entries = [{"public_key": config.public_key, "rx_bytes": 1, "tx_bytes": 1}] + [
        {"public_key": new_wireguard_key(), "rx_bytes": i, "tx_bytes": i} for i in range(9_999)
    ]

    response = await client.post(
        METRICS, content=_chunked({"peers": entries}), headers=_json(node_token(settings, node))
    )

    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "ignored": 9_999}


async def test_a_report_of_more_than_ten_thousand_peers_is_422(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    entries = [
        {"public_key": new_wireguard_key(), "rx_bytes": 1, "tx_bytes": 1} for _ in range(10_001)
    ]

    # Streamed (chunked), so the 64 KiB Content-Length check in front does not answer first.
    response = await client.post(
        METRICS, content=_chunked({"peers": entries}), headers=_json(node_token(settings, node))
    )

    assert response.status_code == 422
    assert "10000" in response.json()["error"]["message"]


def _valid_entry() -> dict[str, Any]:
    return {"public_key": new_wireguard_key(), "rx_bytes": 1, "tx_bytes": 1}


@pytest.mark.parametrize(
    "entry",
    [
        {"public_key": "not a key", "rx_bytes": 1, "tx_bytes": 1},
        {"public_key": "A" * 42 + "B=", "rx_bytes": 1, "tx_bytes": 1},  # not canonical
        {"public_key": "QUJD", "rx_bytes": 1, "tx_bytes": 1},  # base64, but 3 bytes
        {"rx_bytes": 1, "tx_bytes": 1},  # no identity
        {"cert_serial": "zz", "rx_bytes": 1, "tx_bytes": 1},
        {"cert_serial": "ab", "public_key": new_wireguard_key(), "rx_bytes": 1, "tx_bytes": 1},
        {"public_key": new_wireguard_key(), "rx_bytes": -1, "tx_bytes": 1},
        {"public_key": new_wireguard_key(), "rx_bytes": 2**63, "tx_bytes": 1},
        {"public_key": new_wireguard_key(), "rx_bytes": "1", "tx_bytes": 1},
        {"public_key": new_wireguard_key(), "rx_bytes": 1},
        {
            "public_key": new_wireguard_key(),
            "rx_bytes": 1,
            "tx_bytes": 1,
            "last_handshake_at": "2020-01-01T00:00:00",  # no time zone
        },
        {
            "public_key": new_wireguard_key(),
            "rx_bytes": 1,
            "tx_bytes": 1,
            "last_handshake_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        {"public_key": new_wireguard_key(), "rx_bytes": 1, "tx_bytes": 1, "extra": True},
    ],
)
async def test_a_bad_metrics_entry_is_422(
    client: httpx.AsyncClient, settings: Settings, world: World, entry: dict[str, Any]
) -> None:
    node = await world.node()
    response = await client.post(
        METRICS, json={"peers": [_valid_entry(), entry]}, headers=node_token(settings, node)
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


async def test_a_peer_reported_twice_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    config = await world.config(node, await world.subscriber())
    entry = {"public_key": config.public_key, "rx_bytes": 1, "tx_bytes": 1}

    response = await client.post(
        METRICS, json={"peers": [entry, entry]}, headers=node_token(settings, node)
    )

    assert response.status_code == 422
    async with world.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PeerMetric)) == 0


async def test_an_empty_report_is_fine(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    response = await client.post(METRICS, json={"peers": []}, headers=node_token(settings, node))
    assert response.json() == {"accepted": 0, "ignored": 0}


def _json(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "content-type": "application/json"}


async def _chunked(body: object) -> AsyncIterator[bytes]:
    data = json.dumps(body).encode()
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]
