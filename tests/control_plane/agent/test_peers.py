"""GET /v1/agent/peers: the desired set, the long-poll, and what a node token may read."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from control_plane.agent.feed import PeerFeed
from control_plane.agent.service import spread_wait
from control_plane.settings import Settings
from tests.control_plane.agent.conftest import World, new_address, node_token, until, wallet_token

PEERS = "/v1/agent/peers"


async def parked(feed: PeerFeed, count: int = 1) -> None:
    """Returns once `count` long-polls wait on this feed (so a change lands mid-wait)."""
    await until(lambda: feed.waiting >= count)


async def test_the_desired_set_is_the_live_configs_of_paying_subscribers(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    paying = await world.subscriber(days=30)
    lapsed = await world.subscriber(days=-1)
    wireguard = await world.config(node, paying)
    openvpn = await world.config(node, paying, protocol="openvpn")
    await world.config(node, lapsed)  # the subscription ran out: not a peer
    await world.config(node, new_address())  # never paid (no subscribers row): not a peer
    revoked = await world.config(node, paying)
    revision = await world.revoke(revoked)

    response = await client.get(PEERS, headers=node_token(settings, node))

    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == revision == 6
    assert body["changed"] is True
    assert body["peers"] == [
        {
            "protocol": "wireguard",
            "public_key": wireguard.public_key,
            "allowed_ips": [f"{wireguard.ipv4}/32", f"{wireguard.ipv6}/128"],
            "expires_at": body["peers"][0]["expires_at"],
        },
        {
            "protocol": "openvpn",
            "cert_serial": openvpn.cert_serial,
            "allowed_ips": [f"{openvpn.ipv4}/32", f"{openvpn.ipv6}/128"],
            "expires_at": body["peers"][1]["expires_at"],
        },
    ]
    expires_at = body["peers"][0]["expires_at"]
    assert expires_at.endswith("Z")  # ISO 8601, UTC
    assert datetime.fromisoformat(expires_at) > datetime.fromisoformat("2020-01-01T00:00:00Z")


async def test_a_long_poll_returns_soon_after_a_committed_change_with_the_new_peer(
    client: httpx.AsyncClient, settings: Settings, world: World, feed: PeerFeed
) -> None:
    node = await world.node()
    subscriber = await world.subscriber()
    headers = node_token(settings, node)
    first = (await client.get(PEERS, headers=headers)).json()
    assert first == {"revision": 0, "changed": True, "peers": []}

    poll = asyncio.create_task(client.get(PEERS, params={"since": 0, "wait": 30}, headers=headers))
    await parked(feed)
    config = await world.config(node, subscriber)

    response = await asyncio.wait_for(poll, timeout=5)
    body = response.json()
    assert body["revision"] == 1
    assert body["changed"] is True
    assert [p["public_key"] for p in body["peers"]] == [config.public_key]


async def test_a_revocation_wakes_the_long_poll_and_the_peer_leaves(
    client: httpx.AsyncClient, settings: Settings, world: World, feed: PeerFeed
) -> None:
    node = await world.node()
    subscriber = await world.subscriber()
    kept = await world.config(node, subscriber)
    gone = await world.config(node, subscriber)
    headers = node_token(settings, node)

    poll = asyncio.create_task(client.get(PEERS, params={"since": 2, "wait": 30}, headers=headers))
    await parked(feed)
    await world.revoke(gone)

    body = (await asyncio.wait_for(poll, timeout=5)).json()
    assert body["revision"] == 3
    assert [p["public_key"] for p in body["peers"]] == [kept.public_key]


async def test_an_unchanged_poll_answers_the_same_revision_and_runs_no_sql(
    client: httpx.AsyncClient,
    settings: Settings,
    world: World,
    record_statements: Callable[[], Any],
) -> None:
    node = await world.node()
    await world.config(node, await world.subscriber())
    headers = node_token(settings, node)
    revision = (await client.get(PEERS, headers=headers)).json()["revision"]

    with record_statements() as log:
        waited = await client.get(PEERS, params={"since": revision, "wait": 1}, headers=headers)
        at_once = await client.get(PEERS, params={"since": revision}, headers=headers)

    for response in (waited, at_once):
        assert response.status_code == 200
        assert response.json() == {"revision": revision, "changed": False, "peers": None}
    assert log.sql == []
    assert log.listen_connection == []


async def test_a_node_the_map_does_not_know_is_looked_up_once(
    client: httpx.AsyncClient,
    settings: Settings,
    world: World,
    record_statements: Callable[[], Any],
) -> None:
    node = await world.node()  # registered after the application loaded its map
    headers = node_token(settings, node)

    with record_statements() as first:
        response = await client.get(PEERS, params={"since": 0}, headers=headers)
    with record_statements() as second:
        again = await client.get(PEERS, params={"since": 0, "wait": 1}, headers=headers)

    assert response.json() == again.json() == {"revision": 0, "changed": False, "peers": None}
    # The node's lookup, and the token's check against the chain mirror (reused after).
    assert len(first.sql) == 2
    assert second.sql == []


async def test_a_since_ahead_of_the_database_gets_the_full_set(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    config = await world.config(node, await world.subscriber())

    headers = node_token(settings, node)
    response = await client.get(PEERS, params={"since": 99, "wait": 30}, headers=headers)

    body = response.json()
    assert body["revision"] == 1
    assert body["changed"] is True
    assert [p["public_key"] for p in body["peers"]] == [config.public_key]


async def test_a_deleted_node_serves_nobody(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()
    await world.config(node, await world.subscriber())
    async with world.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE nodes SET deleted_at = now() WHERE id = :id"), {"id": node}
        )

    body = (await client.get(PEERS, headers=node_token(settings, node))).json()

    assert body == {"revision": 1, "changed": True, "peers": []}


async def test_a_node_token_reads_only_its_own_node(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node_a, node_b = await world.node(), await world.node()
    subscriber = await world.subscriber()
    mine = await world.config(node_a, subscriber)
    await world.config(node_b, subscriber)
    headers = node_token(settings, node_a)

    other = await client.get(PEERS, params={"node_id": node_b}, headers=headers)
    own = await client.get(PEERS, params={"node_id": node_a}, headers=headers)
    default = await client.get(PEERS, headers=headers)

    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    assert own.json() == default.json()
    assert [p["public_key"] for p in default.json()["peers"]] == [mine.public_key]


async def test_an_unknown_node_is_404(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get(PEERS, headers=node_token(settings, "0x" + "ab" * 32))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_wallets_and_anonymous_callers_cannot_read_peers(
    client: httpx.AsyncClient, settings: Settings, world: World
) -> None:
    node = await world.node()

    headers = wallet_token(settings, new_address())
    wallet = await client.get(PEERS, params={"node_id": node}, headers=headers)
    anonymous = await client.get(PEERS, params={"node_id": node})

    assert wallet.status_code == 403
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"since": 0, "wait": 61},
        {"since": 0, "wait": -1},
        {"since": -1},
        {"since": "latest"},
        {"since": 2**63},
        {"wait": "1.5"},
        {"node_id": "x" * 67},
    ],
)
async def test_bad_query_parameters_are_422(
    client: httpx.AsyncClient, settings: Settings, world: World, params: dict[str, Any]
) -> None:
    node = await world.node()
    response = await client.get(PEERS, params=params, headers=node_token(settings, node))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


async def test_long_polls_per_node_are_bounded(
    client: httpx.AsyncClient, settings: Settings, world: World, feed: PeerFeed
) -> None:
    node = await world.node()
    headers = node_token(settings, node)
    await client.get(PEERS, headers=headers)
    polls = [
        asyncio.create_task(client.get(PEERS, params={"since": 0, "wait": 30}, headers=headers))
        for _ in range(feed.max_waiters_per_node)
    ]
    await parked(feed, feed.max_waiters_per_node)

    refused = await client.get(PEERS, params={"since": 0, "wait": 30}, headers=headers)
    await world.bump(node)
    answered = await asyncio.wait_for(asyncio.gather(*polls), timeout=5)

    assert refused.status_code == 429
    assert refused.headers["retry-after"]
    assert [r.json()["revision"] for r in answered] == [1] * feed.max_waiters_per_node


async def test_shutdown_answers_parked_polls(
    settings: Settings, world: World, second_app: FastAPI
) -> None:
    node = await world.node()
    feed: PeerFeed = second_app.state.feed
    transport = httpx.ASGITransport(app=second_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        poll = asyncio.create_task(
            http.get(PEERS, params={"since": 0, "wait": 30}, headers=node_token(settings, node))
        )
        await parked(feed)
        await feed.stop()
        response = await asyncio.wait_for(poll, timeout=5)
    # Answered at once, before the engine goes away, with a retry the agent sends elsewhere.
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "shutting_down"
    assert response.headers["retry-after"] == "1"


async def test_unchanged_polls_answer_the_routes_bytes_until_the_revision_moves(
    client: httpx.AsyncClient, settings: Settings, world: World, feed: PeerFeed
) -> None:
    # An unchanged poll with wait=0 is answered before routing (agent/unchanged_poll.py) once
    # the token is verified here; with wait > 0 the route answers. Both must say the same.
    node = await world.node()
    config = await world.config(node, await world.subscriber())
    headers = node_token(settings, node)
    revision = (await client.get(PEERS, headers=headers)).json()["revision"]

    shortcut = await client.get(f"{PEERS}?since={revision}&wait=0", headers=headers)
    routed = await client.get(PEERS, params={"since": revision, "wait": 1}, headers=headers)
    assert shortcut.status_code == routed.status_code == 200
    assert shortcut.content == routed.content
    assert shortcut.headers["content-type"] == routed.headers["content-type"]
    assert shortcut.headers["x-request-id"]

    moved = await world.revoke(config)
    await until(lambda: feed.revision(node) == moved)
    after = await client.get(f"{PEERS}?since={revision}&wait=0", headers=headers)
    assert after.json() == {"revision": moved, "changed": True, "peers": []}
    other = await client.get(f"{PEERS}?since={revision}&wait=0", headers=node_token(settings, node))
    assert other.json()["changed"] is True  # a token not seen before: verified by the route
    bad = await client.get(f"{PEERS}?since={moved}&wait=0&since=1", headers=headers)
    assert bad.status_code == 200  # a repeated parameter is the route's to read (its last)
    assert (await client.get(f"{PEERS}?since=-1", headers=headers)).status_code == 422


def test_unchanged_long_polls_come_back_spread_over_the_last_quarter_of_wait() -> None:
    """Agents that parked together (a replica restarted, a fleet ramped up) must not all come
    back in the same second and re-check their tokens at once (P8's herd)."""
    rng = random.Random(7)
    parked = [spread_wait(60, rng) for _ in range(1000)]
    assert all(45.0 <= seconds <= 60.0 for seconds in parked)
    assert min(parked) < 46.0
    assert max(parked) > 59.0
    assert len({round(seconds) for seconds in parked}) >= 15  # every second of the window
