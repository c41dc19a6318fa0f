"""The `ChainReader` protocol is complete: the reward pool reads and the oracle's sender work
over any reader, not only the web3 one (they used to raise TypeError for anything else)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from eth_account import Account
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from web3.types import FilterParams, LogReceipt

from control_plane.chain.caches import KeystoreCache
from control_plane.chain.client import BlockHeader, ChainReader, OnChainNode
from control_plane.chain.contracts import Deployment
from control_plane.chain.distributor import (
    ClaimView,
    DistributorReads,
    DistributorState,
    Settlement,
)
from control_plane.chain.sender import TransactionSender
from control_plane.chain.tx_rpc import Receipt, TxRpc
from control_plane.jobs import Services
from control_plane.rewards.posting.gather import total_funded
from control_plane.settings import OracleSettings, Settings

FUNDED = 123 * 10**18


class FakeDistributor:
    address = "0x" + "d1" * 20
    subscriptions_address = "0x" + "5b" * 20

    async def state(self) -> DistributorState:
        raise NotImplementedError

    async def claim_view(self, account: str) -> ClaimView:
        raise NotImplementedError

    async def is_oracle(self, account: str) -> bool:
        return False

    async def accrued_revenue(self) -> int:
        return 0

    async def total_funded(self) -> int:
        return FUNDED

    async def total_claimed(self) -> int:
        return 0

    async def settlement_tx(self, epoch: int, from_block: int) -> tuple[Settlement, str] | None:
        return None

    def propose_calldata(
        self, epoch: int, root: bytes, total_cumulative: int, data_hash: bytes
    ) -> bytes:
        return b""

    def accept_calldata(self) -> bytes:
        return b""

    def flush_calldata(self) -> bytes:
        return b""


class FakeTxRpc:
    async def block_number(self) -> int:
        return 1

    async def nonce(self, address: str, block: Literal["latest", "pending"]) -> int:
        return 0

    async def estimate_gas(self, sender: str, to: str, data: bytes, value: int) -> int:
        return 21_000

    async def base_fee(self) -> int:
        return 1

    async def max_priority_fee(self) -> int:
        return 1

    async def send_raw(self, raw: bytes) -> None:
        return None

    async def receipt(self, tx_hash: str) -> Receipt | None:
        return None

    async def is_known(self, tx_hash: str) -> bool:
        return False


class FakeChain:
    """A chain reader that is not Web3ChainReader."""

    def __init__(self) -> None:
        self.chain_id = 31337
        self.deployment = Deployment(chain_id=31337, start_block=0, addresses={})
        self._distributor = FakeDistributor()
        self.rpc = FakeTxRpc()

    async def block_number(self) -> int:
        return 1

    async def block_hash(self, number: int) -> str:
        return "0x" + "00" * 32

    async def block_header(self, block: int | Literal["latest"]) -> BlockHeader:
        return BlockHeader(1, "0x" + "00" * 32, "0x" + "00" * 32, 0)

    async def block_timestamp(self, number: int) -> int:
        return 0

    async def subscription_expiry(self, address: str) -> int:
        return 0

    async def price_per_period(self) -> int:
        return 0

    async def node(self, node_id: str) -> OnChainNode:
        raise NotImplementedError

    async def get_logs(self, params: FilterParams) -> list[LogReceipt]:
        return []

    async def ping(self) -> bool:
        return True

    @property
    def distributor(self) -> DistributorReads:
        return self._distributor

    def transaction_rpc(self) -> TxRpc:
        return self.rpc


def services_over(chain: ChainReader) -> Services:
    settings = Settings(
        jwt_secret=SecretStr("j" * 32),
        api_key_secret=SecretStr("a" * 32),
        data_key=SecretStr("d" * 32),
        deployments_dir=Path("deployments"),
        oracle=OracleSettings(oracle_private_key=SecretStr(Account.create().key.hex())),
    )
    return Services(settings, async_sessionmaker(), chain)


async def test_the_reward_pool_reads_through_any_chain_reader() -> None:
    assert await total_funded(FakeChain()) == FUNDED


async def test_the_oracle_sender_works_over_any_chain_reader() -> None:
    chain = FakeChain()
    services = services_over(chain)
    sender = TransactionSender.for_services(services)
    assert sender.rpc is chain.rpc
    assert sender.chain_id == 31337
    assert sender.settings == services.settings.oracle


def test_each_app_holds_its_own_caches() -> None:
    first, second = services_over(FakeChain()), services_over(FakeChain())
    assert first.chain_reads is not second.chain_reads
    assert first.keystores is not second.keystores
    assert isinstance(first.keystores, KeystoreCache)
