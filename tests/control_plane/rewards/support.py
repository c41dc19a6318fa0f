"""Rows as the other parts of the control plane write them (nodes, the indexer's chain state,
configs, agents' reports) and signed probe samples, for the scoring and prober tests."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.agent.models import Heartbeat, PeerMetric
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import contract
from control_plane.device_configs import DeviceConfig
from control_plane.indexer.models import ChainNode
from control_plane.nodes.models import Node
from control_plane.prober import repository as prober_repository
from control_plane.prober.signing import Sample, sign_sample
from control_plane.subscriptions.models import Subscriber
from tests.support.devchain import dev_account, transact

NDS = 10**18
CHAIN_ID = 31337


def new_node_id() -> str:
    return "0x" + secrets.token_hex(32)


def new_address() -> str:
    return "0x" + secrets.token_hex(20)


def wg_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session, session.begin():
        yield session


async def add_node(
    session: AsyncSession,
    *,
    operator: str,
    endpoint: str = "127.0.0.1:9",
    active: bool = True,
    node_id: str | None = None,
    created_at: datetime | None = None,
    indexed: bool = True,
    agent: str | None = None,
    stake: int = 100 * NDS,
) -> str:
    """A node registered here and (unless `indexed` is False) known to the indexer, with
    `agent` (default: a fresh address) as its on-chain agent."""
    node_id = node_id or new_node_id()
    index = int(node_id[-4:], 16)
    await session.execute(
        insert(Node).values(
            id=node_id,
            operator=operator.lower(),
            protocols=["wireguard"],
            endpoint=endpoint,
            country="DE",
            wireguard_public_key=wg_key(),
            ipv4_pool=f"10.{index % 250}.0.0/16",
            ipv6_pool=f"fd00:{index:x}::/112",
            created_at=created_at or datetime.now(UTC) - timedelta(days=1),
        )
    )
    if indexed:
        await session.execute(
            insert(ChainNode).values(
                node_id=node_id,
                operator=operator.lower(),
                agent=(agent or new_address()).lower(),
                stake=stake,
                status="active" if active else "exiting",
                active=active,
                updated_block=1,
            )
        )
    return node_id


async def add_config(
    session: AsyncSession,
    node_id: str,
    *,
    expires_at: datetime | None = None,
    subscriber: str | None = None,
) -> str:
    """A paying subscriber's WireGuard config on the node (a new subscriber unless `subscriber`
    is given: one wallet may have several devices); returns its public key."""
    subscriber = (subscriber or new_address()).lower()
    key = wg_key()
    await session.execute(
        pg_insert(Subscriber)
        .values(address=subscriber, expires_at=expires_at or datetime.now(UTC) + timedelta(days=30))
        .on_conflict_do_nothing()
    )
    host = int(secrets.token_hex(2), 16) % 60_000 + 2
    await session.execute(
        insert(DeviceConfig).values(
            node_id=node_id,
            subscriber=subscriber,
            protocol="wireguard",
            public_key=key,
            ipv4=f"10.0.{host // 250}.{host % 250 + 2}",
            ipv6=f"fd00::{host:x}",
            created_at=datetime.now(UTC) - timedelta(days=2),
        )
    )
    return key


async def agent_of(session: AsyncSession, node_id: str) -> str:
    """The node's agent key as the indexer recorded it."""
    agent = await session.scalar(select(ChainNode.agent).where(ChainNode.node_id == node_id))
    assert agent is not None
    return agent.lower()


async def report_peer(
    session: AsyncSession,
    node_id: str,
    public_key: str,
    *,
    at: datetime,
    rx: int,
    tx: int,
    handshake_age: timedelta | None = timedelta(seconds=30),
) -> None:
    await session.execute(
        insert(PeerMetric).values(
            node_id=node_id,
            public_key=public_key,
            reported_at=at,
            last_handshake_at=None if handshake_age is None else at - handshake_age,
            rx_bytes=rx,
            tx_bytes=tx,
        )
    )


async def boast(session: AsyncSession, node_id: str, at: datetime) -> None:
    """Heartbeats that claim a lot: scoring never reads them."""
    await session.execute(
        insert(Heartbeat).values(
            node_id=node_id,
            received_at=at,
            agent_version="9.9.9",
            applied_revision=10**6,
            active_peers=10**5,
            rx_bytes_total=10**15,
            tx_bytes_total=10**15,
        )
    )


@dataclass
class Prober:
    """A prober key that signs samples as the real ones do."""

    account: LocalAccount = field(default_factory=Account.create)

    @property
    def address(self) -> str:
        return self.account.address.lower()

    async def allow(self, session: AsyncSession, name: str = "test prober") -> None:
        await prober_repository.put_prober(session, self.address, name)

    def sample(
        self,
        node_id: str,
        round_at: int,
        rtt_us: tuple[int, ...] = (20_000, 21_000, 19_000),
        attempts: int = 3,
        error: str | None = None,
    ) -> tuple[Sample, str]:
        sample = Sample(self.address, node_id, round_at, attempts, rtt_us, error)
        return sample, sign_sample(self.account, sample, CHAIN_ID)

    async def rounds(
        self,
        session: AsyncSession,
        node_id: str,
        start: datetime,
        count: int,
        *,
        answered: int | None = None,
        rtt_us: int = 20_000,
        every: timedelta = timedelta(minutes=1),
    ) -> None:
        """`count` rounds from `start`; the first `answered` (default all) answered."""
        answered = count if answered is None else answered
        signed = []
        for i in range(count):
            round_at = int((start + i * every).timestamp())
            if i < answered:
                signed.append(self.sample(node_id, round_at, (rtt_us, rtt_us + 500, rtt_us - 500)))
            else:
                signed.append(self.sample(node_id, round_at, (), error="timeout"))
        await prober_repository.insert_samples(session, signed)


async def fund_pool(chain: Web3ChainReader, amount: int) -> None:
    """The treasury (dev account 0) funds the RewardDistributor with `amount` NDS wei."""
    token = contract(chain.w3, chain.deployment, "NDSToken")
    rewards = contract(chain.w3, chain.deployment, "RewardDistributor")
    funder = dev_account(0)
    await transact(chain.w3, funder, token.functions.approve(rewards.address, amount))
    await transact(chain.w3, funder, rewards.functions.fund(amount))
