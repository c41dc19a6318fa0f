"""The feed across replicas (two applications, one database) and across a lost LISTEN
connection."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from control_plane.agent.feed import PeerFeed
from control_plane.db import unit_of_work
from control_plane.settings import Settings
from tests.control_plane.agent.conftest import World, node_token, until
from tests.control_plane.agent.test_peers import PEERS, parked


async def test_a_change_committed_on_one_replica_wakes_a_long_poll_on_another(
    app: FastAPI, second_app: FastAPI, settings: Settings, world: World
) -> None:
    node = await world.node()
    subscriber = await world.subscriber()
    await world.config(node, subscriber)
    transport = httpx.ASGITransport(app=second_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as replica_b:
        headers = node_token(settings, node)
        poll = asyncio.create_task(
            replica_b.get(PEERS, params={"since": 1, "wait": 30}, headers=headers)
        )
        await parked(second_app.state.feed)

        # The change goes through replica A's own sessions (as its configs service would).
        config = await World(app.state.sessions, world.hosts).config(node, subscriber)

        body = (await asyncio.wait_for(poll, timeout=5)).json()
    assert body["revision"] == 2
    assert config.public_key in [p.get("public_key") for p in body["peers"]]
    assert app.state.feed.revision(node) == 2  # replica A heard it too


async def test_a_lost_listen_connection_reconnects_and_catches_up(
    client: httpx.AsyncClient, settings: Settings, world: World, feed: PeerFeed
) -> None:
    node = await world.node()
    subscriber = await world.subscriber()
    headers = node_token(settings, node)
    await client.get(PEERS, headers=headers)
    listen = feed.connection
    assert listen is not None
    poll = asyncio.create_task(client.get(PEERS, params={"since": 0, "wait": 30}, headers=headers))
    await parked(feed)

    async with unit_of_work(world.sessions) as session:
        await session.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": listen.get_server_pid()}
        )
    config = await world.config(node, subscriber)  # possibly while nobody listens

    body = (await asyncio.wait_for(poll, timeout=5)).json()
    assert body["revision"] == 1
    assert [p["public_key"] for p in body["peers"]] == [config.public_key]
    await until(lambda: feed.live)
    assert feed.connection is not None
    assert feed.connection is not listen


async def test_a_malformed_notification_is_ignored(
    client: httpx.AsyncClient, settings: Settings, world: World, feed: PeerFeed
) -> None:
    node = await world.node()
    headers = node_token(settings, node)
    await client.get(PEERS, headers=headers)
    poll = asyncio.create_task(client.get(PEERS, params={"since": 0, "wait": 30}, headers=headers))
    await parked(feed)

    async with unit_of_work(world.sessions) as session:
        for payload in ("garbage", f"{node}:", f"{node}:-5", f"{node}:x"):
            await session.execute(
                text("SELECT pg_notify('nodus_peers', :payload)"), {"payload": payload}
            )
    await world.bump(node)

    body = (await asyncio.wait_for(poll, timeout=5)).json()
    assert body["revision"] == 1
    assert feed.live
