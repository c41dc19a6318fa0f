"""The chain as the transaction sender needs it: the JSON-RPC calls (`TxRpc`) and their web3
implementation over the chain reader's connection, retries and circuit breaker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from eth_typing import HexStr
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams, Wei

from control_plane.chain.client import Web3ChainReader, hex0x

log = logging.getLogger("nodus.sender")


T = TypeVar("T")


# The chain, as the sender needs it


class TxRejected(Exception):
    """The node answered a transaction call with an error (not an outage)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    status: int
    gas_used: int


class TxRpc(Protocol):
    """The JSON-RPC calls of the sender (outages raise ChainUnavailable)."""

    async def block_number(self) -> int: ...
    async def nonce(self, address: str, block: Literal["latest", "pending"]) -> int: ...
    async def estimate_gas(self, sender: str, to: str, data: bytes, value: int) -> int: ...
    async def base_fee(self) -> int: ...
    async def max_priority_fee(self) -> int: ...
    async def send_raw(self, raw: bytes) -> None: ...
    async def receipt(self, tx_hash: str) -> Receipt | None: ...
    async def is_known(self, tx_hash: str) -> bool: ...


def _rpc_message(exc: Web3RPCError) -> str:
    response: Any = exc.rpc_response or {}
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(exc)


class Web3TxRpc:
    """TxRpc over the chain reader's connection, with its retries and circuit breaker. An RPC
    error answer (nonce too low, underpriced, ...) is a TxRejected, never retried."""

    def __init__(self, reader: Web3ChainReader) -> None:
        self.reader = reader
        self.w3 = reader.w3

    async def _call(self, operation: Callable[[], Awaitable[T]], rpc_method: str) -> T:
        async def guarded() -> T:
            try:
                return await operation()
            except ContractLogicError:
                raise
            except Web3RPCError as exc:
                raise TxRejected(_rpc_message(exc)) from exc

        return await self.reader.call(guarded, rpc_method)

    async def block_number(self) -> int:
        return int(await self._call(lambda: self.w3.eth.block_number, "eth_blockNumber"))

    async def nonce(self, address: str, block: Literal["latest", "pending"]) -> int:
        checksum = AsyncWeb3.to_checksum_address(address)
        return int(
            await self._call(
                lambda: self.w3.eth.get_transaction_count(checksum, block),
                "eth_getTransactionCount",
            )
        )

    async def estimate_gas(self, sender: str, to: str, data: bytes, value: int) -> int:
        params: TxParams = {
            "from": AsyncWeb3.to_checksum_address(sender),
            "to": AsyncWeb3.to_checksum_address(to),
            "data": data,
            "value": Wei(value),
        }
        # Against the pending block, where the transaction will be mined: on an idle dev chain
        # the latest block can be minutes old, and a time-gated call (acceptRoot after its
        # window) reverts there but not in the next block.
        return int(
            await self._call(lambda: self.w3.eth.estimate_gas(params, "pending"), "eth_estimateGas")
        )

    async def base_fee(self) -> int:
        block = await self._call(lambda: self.w3.eth.get_block("latest"), "eth_getBlockByNumber")
        return int(block.get("baseFeePerGas", 0))

    async def max_priority_fee(self) -> int:
        return int(
            await self._call(lambda: self.w3.eth.max_priority_fee, "eth_maxPriorityFeePerGas")
        )

    async def send_raw(self, raw: bytes) -> None:
        await self._call(lambda: self.w3.eth.send_raw_transaction(raw), "eth_sendRawTransaction")

    async def receipt(self, tx_hash: str) -> Receipt | None:
        async def fetch() -> Receipt | None:
            try:
                data = await self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
            except TransactionNotFound:
                return None
            return Receipt(
                tx_hash=hex0x(data["transactionHash"]),
                block_number=int(data["blockNumber"]),
                status=int(data["status"]),
                gas_used=int(data["gasUsed"]),
            )

        return await self._call(fetch, "eth_getTransactionReceipt")

    async def is_known(self, tx_hash: str) -> bool:
        async def fetch() -> bool:
            try:
                await self.w3.eth.get_transaction(HexStr(tx_hash))
            except TransactionNotFound:
                return False
            return True

        return await self._call(fetch, "eth_getTransactionByHash")
