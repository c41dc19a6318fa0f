"""Rows for the agent feed's tests, inserted with SQLAlchemy (the nodes and configs APIs are
another domain's), and tokens for node agents and wallets."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from control_plane.agent.feed import PeerFeed
from control_plane.app import create_app
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.device_configs import DeviceConfig
from control_plane.nodes.models import Node
from control_plane.revisions import bump_revision
from control_plane.settings import Settings
from control_plane.subscriptions.models import Subscriber
from tests.support.devchain import Anvil


def new_node_id() -> str:
    return "0x" + secrets.token_hex(32)


def new_address() -> str:
    return "0x" + secrets.token_hex(20)


def new_wireguard_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def until(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Returns once `condition()` holds (fails after `seconds`)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (a test's observation, not a coordination)
            await asyncio.sleep(0.01)


def node_token(settings: Settings, node_id: str) -> dict[str, str]:
    principal = Principal(subject=node_id, roles=frozenset({Role.NODE}), node_id=node_id)
    return {"authorization": f"Bearer {issue_access_token(settings, principal)}"}


def wallet_token(settings: Settings, address: str) -> dict[str, str]:
    principal = Principal(subject=address, roles=frozenset({Role.SUBSCRIBER}))
    return {"authorization": f"Bearer {issue_access_token(settings, principal)}"}


@dataclass
class World:
    """Writes what other domains would write, each change in its own committed transaction
    that bumps the node's revision (as the configs service and the expiry job will)."""

    sessions: async_sessionmaker[AsyncSession]
    hosts: dict[str, int] = field(default_factory=dict)

    async def node(self, node_id: str | None = None, *, deleted: bool = False) -> str:
        node_id = node_id or new_node_id()
        async with unit_of_work(self.sessions) as session:
            session.add(
                Node(
                    id=node_id,
                    operator=new_address(),
                    protocols=["wireguard", "openvpn"],
                    endpoint="203.0.113.7:51820",
                    country="DE",
                    ipv4_pool="10.8.0.0/16",
                    ipv6_pool="fd00:8::/64",
                    revision=0,
                    deleted_at=datetime.now(UTC) if deleted else None,
                )
            )
        return node_id

    async def subscriber(self, address: str | None = None, *, days: float = 30) -> str:
        address = address or new_address()
        expires_at = datetime.now(UTC) + timedelta(days=days)
        async with unit_of_work(self.sessions) as session:
            statement = insert(Subscriber).values(address=address, expires_at=expires_at)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Subscriber.address], set_={"expires_at": expires_at}
                )
            )
        return address

    async def config(
        self,
        node_id: str,
        subscriber: str,
        *,
        protocol: str = "wireguard",
        public_key: str | None = None,
        cert_serial: str | None = None,
    ) -> DeviceConfig:
        """Issues a config on the node and bumps its revision, in one committed transaction."""
        host = self.hosts[node_id] = self.hosts.get(node_id, 1) + 1
        if protocol == "wireguard":
            public_key = public_key or new_wireguard_key()
        else:
            cert_serial = cert_serial or secrets.token_hex(16)
        config = DeviceConfig(
            id=uuid.uuid4(),
            node_id=node_id,
            subscriber=subscriber,
            protocol=protocol,
            public_key=public_key,
            cert_serial=cert_serial,
            ipv4=f"10.8.{host // 256}.{host % 256}",
            ipv6=f"fd00:8::{host:x}",
        )
        async with unit_of_work(self.sessions) as session:
            session.add(config)
            await session.flush()
            await bump_revision(session, node_id, [config.id])
        return config

    async def revoke(self, config: DeviceConfig) -> int:
        async with unit_of_work(self.sessions) as session:
            await session.execute(
                update(DeviceConfig)
                .where(DeviceConfig.id == config.id)
                .values(revoked_at=datetime.now(UTC))
            )
            return await bump_revision(session, config.node_id, [config.id])

    async def bump(self, node_id: str) -> int:
        async with unit_of_work(self.sessions) as session:
            return await bump_revision(session, node_id)


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    engine = make_engine(settings.database_url)
    yield World(make_sessionmaker(engine))
    await engine.dispose()


@pytest.fixture
def feed(app: FastAPI) -> PeerFeed:
    feed: PeerFeed = app.state.feed
    return feed


@pytest.fixture
async def second_app(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[FastAPI]:
    """Another replica: its own engine, its own feed, the same database."""
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    application = create_app(settings, chain=chain)
    async with LifespanManager(application):
        yield application


@dataclass
class StatementLog:
    """Every statement the application's engine sends, and every query on the LISTEN
    connection, while recording."""

    sql: list[str] = field(default_factory=list)
    listen_connection: list[str] = field(default_factory=list)


@pytest.fixture
def record_statements(app: FastAPI) -> Callable[[], Any]:
    @contextmanager
    def recording() -> Iterator[StatementLog]:
        log = StatementLog()
        engine: AsyncEngine = app.state.engine

        def on_execute(*args: Any) -> None:
            log.sql.append(str(args[2]))

        def on_query(record: Any) -> None:
            log.listen_connection.append(record.query)

        connection = app.state.feed.connection
        assert connection is not None
        event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
        connection.add_query_logger(on_query)
        try:
            yield log
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
            connection.remove_query_logger(on_query)

    return recording
