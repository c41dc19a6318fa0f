"""Shared by the sender and reward-posting tests: the oracle's sender on the test's anvil and
database, a simulated crash, manual mining, and event counting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr
from web3 import AsyncWeb3

from control_plane.chain.client import Web3ChainReader, hex0x
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.sender import TransactionSender
from control_plane.chain.tx_rpc import TxRpc, Web3TxRpc
from control_plane.db import make_engine, make_sessionmaker
from control_plane.jobs import Services
from control_plane.settings import OracleSettings, Settings
from tests.support.devchain import Anvil, dev_account

NDS = 10**18
ORACLE = dev_account(1)


class Killed(BaseException):
    """Stands for the process dying: no `except Exception` catches it."""


class CrashingRpc:
    """The real RPC, except that `send_raw` dies before (or right after) the node gets the
    transaction."""

    def __init__(self, inner: Web3TxRpc, *, after_send: bool) -> None:
        self.inner = inner
        self.after_send = after_send
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def send_raw(self, raw: bytes) -> None:
        if self.after_send:
            await self.inner.send_raw(raw)
            self.sent += 1
        raise Killed


@pytest.fixture
async def services(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[Services]:
    """What the scheduler hands the jobs: real database, real JSON-RPC reader on anvil."""
    engine = make_engine(settings.database_url)
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    yield Services(settings, make_sessionmaker(engine), chain)
    await engine.dispose()


@pytest.fixture
def oracle_settings() -> OracleSettings:
    return OracleSettings(
        oracle_private_key=SecretStr(ORACLE.key.hex()),
        tx_poll_seconds=0.05,
        tx_wait_timeout_seconds=30,
    )


SenderFactory = Callable[..., TransactionSender]


@pytest.fixture
def make_sender(services: Services, oracle_settings: OracleSettings) -> SenderFactory:
    """A fresh sender instance (as after a restart): `rpc` wraps the real one, `settings`
    overrides fields of the oracle settings."""

    def make(
        rpc: Callable[[Web3TxRpc], TxRpc] | None = None, **overrides: Any
    ) -> TransactionSender:
        settings = oracle_settings.model_copy(update=overrides)
        sender = TransactionSender.for_services(services, settings)
        if rpc is not None:
            assert isinstance(sender.rpc, Web3TxRpc)
            sender.rpc = rpc(sender.rpc)
        return sender

    return make


@pytest.fixture
def sender(make_sender: SenderFactory) -> TransactionSender:
    return make_sender()


@asynccontextmanager
async def manual_mining(w3: Web3Client) -> AsyncIterator[None]:
    """anvil mines only on `mine(w3)` inside the block (automine is restored after)."""
    await w3.provider.make_request("evm_setAutomine", [False])
    try:
        yield
    finally:
        await w3.provider.make_request("evm_setAutomine", [True])


async def mine(w3: Web3Client) -> None:
    await w3.provider.make_request("evm_mine", [])


async def pool(w3: Web3Client) -> dict[str, Any]:
    """anvil's pending transactions of the oracle, by nonce."""
    content = (await w3.provider.make_request("txpool_content", []))["result"]
    pending: dict[str, Any] = content["pending"].get(ORACLE.address.lower(), {})
    return pending


async def oracle_nonce(w3: Web3Client) -> int:
    return await w3.eth.get_transaction_count(ORACLE.address, "latest")


async def events(w3: Web3Client, deployment: Deployment, name: str) -> list[Any]:
    """Every `name` event of the RewardDistributor so far."""
    distributor = contract(w3, deployment, "RewardDistributor")
    event = distributor.events[name]
    return list(await event.get_logs(from_block=0))


def hexes(values: list[bytes]) -> list[str]:
    return [hex0x(v) for v in values]


def checksum(address: str) -> str:
    return AsyncWeb3.to_checksum_address(address)
