"""The one place the control plane talks to the chain: timeouts, retries with full-jitter
exponential backoff, and a circuit breaker, around typed reads of the Nodus contracts.

`ChainReader` is the seam (a Protocol): services, jobs and the oracle's sender depend on it
alone (its distributor reads and transaction RPC included), so any reader, a fake one too, works
everywhere; tests use the real `Web3ChainReader` against anvil.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from eth_typing import BlockNumber
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from opentelemetry.trace import NoOpTracer, Tracer
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.types import FilterParams, LogReceipt, RPCEndpoint

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.errors import ChainUnavailable
from control_plane.instruments import BREAKER_STATES, Metrics

if TYPE_CHECKING:
    from control_plane.chain.distributor import DistributorReads
    from control_plane.chain.tx_rpc import TxRpc

T = TypeVar("T")

NODE_STATUSES = ("none", "active", "exiting", "withdrawn")


@dataclass(frozen=True, slots=True)
class OnChainNode:
    node_id: str
    operator: str  # lower-case
    agent: str  # lower-case
    stake: int
    status: str  # none | active | exiting | withdrawn
    unbonding_end: int
    metadata_uri: str
    active: bool


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What the indexer needs of a block: where it sits, what it builds on, and when."""

    number: int
    hash: str  # 0x-hex, lower-case
    parent_hash: str  # 0x-hex, lower-case
    timestamp: int  # unix seconds


class LogQueryRejected(Exception):
    """The node answered `eth_getLogs` with an error (range or result set too large, a server-side
    timeout, a rate limit): the query, not the connection, is the problem, so it is not retried
    here and does not trip the breaker; the indexer asks again for fewer blocks."""


def hex0x(value: bytes) -> str:
    """Bytes (HexBytes included) as lower-case 0x-hex."""
    return "0x" + bytes(value).hex()


class ChainReader(Protocol):
    chain_id: int
    deployment: Deployment

    async def block_number(self) -> int: ...
    async def block_hash(self, number: int) -> str: ...
    async def block_header(self, block: int | Literal["latest"]) -> BlockHeader: ...
    async def block_timestamp(self, number: int) -> int: ...
    async def subscription_expiry(self, address: str) -> int: ...
    async def price_per_period(self) -> int: ...
    async def node(self, node_id: str) -> OnChainNode: ...
    async def get_logs(self, params: FilterParams) -> list[LogReceipt]: ...
    async def ping(self) -> bool: ...

    @property
    def distributor(self) -> DistributorReads:
        """The RewardDistributor reads (one reader per chain reader)."""
        ...

    def transaction_rpc(self) -> TxRpc:
        """What the oracle's transaction sender needs of the chain, over this connection."""
        ...


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; while open, calls fail at once for
    `cooldown` seconds. Then it is half-open: exactly one trial call goes through while every
    other call still fails at once; the trial's success closes it, its failure opens it again."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_in_flight = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    @property
    def state(self) -> Literal["closed", "half_open", "open"]:
        """closed; open (calls fail at once); half_open (the cooldown is over: the next call is
        the trial, or the trial is in flight)."""
        if self.opened_at is None:
            return "closed"
        if self.trial_in_flight or self.clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def admit(self) -> Literal["closed", "trial"] | None:
        """How a call may proceed: freely (closed), as the one half-open trial, or not at all."""
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at < self.cooldown or self.trial_in_flight:
            return None
        self.trial_in_flight = True
        return "trial"

    def release_trial(self) -> None:
        """The trial ended with neither verdict (cancelled, or an error that is no outage)."""
        self.trial_in_flight = False

    def success(self) -> None:
        self.failures, self.opened_at, self.trial_in_flight = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


class Web3ChainReader:
    """ChainReader over JSON-RPC. Contract reverts are answers, not outages: they are not
    retried and do not count against the breaker."""

    def __init__(
        self,
        w3: Web3Client,
        deployment: Deployment,
        *,
        attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 2.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.chain_id = deployment.chain_id
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay
        self.breaker = breaker or CircuitBreaker()
        self.subscriptions = contract(w3, deployment, "SubscriptionManager")
        self.registry = contract(w3, deployment, "NodeRegistry")
        self._distributor: DistributorReads | None = None
        self.metrics: Metrics | None = None
        self.tracer: Tracer = NoOpTracer()

    def observe(self, metrics: Metrics, tracer: Tracer) -> None:
        """Counts, times and traces every call from now on (the app does this at start-up,
        also for a reader a test hands it)."""
        self.metrics, self.tracer = metrics, tracer
        self.publish_breaker_state()

    def publish_breaker_state(self) -> None:
        """Sets the breaker gauge (after every call, and at each scrape: open turns half-open
        with time alone)."""
        if self.metrics is not None:
            self.metrics.rpc_breaker_state.set(BREAKER_STATES[self.breaker.state])

    @property
    def distributor(self) -> DistributorReads:
        if self._distributor is None:
            # Imported here: the distributor reader is built over this class.
            from control_plane.chain.distributor import RewardDistributorReader

            self._distributor = RewardDistributorReader(self)
        return self._distributor

    def transaction_rpc(self) -> TxRpc:
        from control_plane.chain.tx_rpc import Web3TxRpc

        return Web3TxRpc(self)

    @classmethod
    def connect(cls, rpc_url: str, deployment: Deployment, timeout: float) -> Web3ChainReader:
        provider = AsyncWeb3.AsyncHTTPProvider(
            rpc_url,
            request_kwargs={"timeout": timeout},
            exception_retry_configuration=None,  # retries live here, in one place
        )
        return cls(AsyncWeb3(provider), deployment)

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        rpc_method: str = "eth_call",
        function: str | None = None,
    ) -> T:
        """Runs `operation` with retries behind the breaker; one span and one count per call,
        by `function` (the contract function) where known, else `rpc_method`."""
        method = function or rpc_method
        with self.tracer.start_as_current_span(f"rpc {method}") as span:
            span.set_attribute("rpc.system", "jsonrpc")
            span.set_attribute("rpc.method", rpc_method)
            if function is not None:
                span.set_attribute("nodus.contract_function", function)
            started = time.perf_counter()
            outcome = "cancelled"  # unless set below
            admission = self.breaker.admit()
            try:
                if admission is None:
                    outcome = "breaker_open"
                    raise ChainUnavailable()
                try:
                    result = await self._attempts(operation, trial=admission == "trial")
                finally:
                    if admission == "trial":
                        self.breaker.release_trial()
                outcome = "ok"
                return result
            except ChainUnavailable:
                if admission is not None:
                    outcome = "unavailable"
                raise
            except ContractLogicError:
                outcome = "reverted"
                raise
            except Exception:
                outcome = "rejected"  # the node answered with an error (LogQueryRejected, ...)
                raise
            finally:
                span.set_attribute("nodus.rpc.outcome", outcome)
                if self.metrics is not None:
                    self.metrics.rpc_calls.labels(method, outcome).inc()
                    self.metrics.rpc_seconds.labels(method).observe(time.perf_counter() - started)
                    self.publish_breaker_state()

    async def _attempts(self, operation: Callable[[], Awaitable[T]], *, trial: bool) -> T:
        # The half-open trial is one attempt: its failure reopens the breaker at once.
        attempts = 1 if trial else self.attempts
        for attempt in range(attempts):
            try:
                result = await operation()
            except ContractLogicError:
                self.breaker.success()
                raise
            except (OSError, TimeoutError, Web3Exception) as exc:
                self.breaker.failure()
                if attempt + 1 == attempts or self.breaker.is_open:
                    raise ChainUnavailable() from exc
                # Full jitter: a random delay up to the exponential bound.
                bound = min(self.max_delay, self.base_delay * 2**attempt)
                await asyncio.sleep(random.uniform(0, bound))  # noqa: S311
            except Exception as exc:
                # aiohttp's client errors and the like: an outage, not an answer.
                if type(exc).__module__.startswith(("aiohttp", "httpx")):
                    self.breaker.failure()
                    raise ChainUnavailable() from exc
                raise
            else:
                self.breaker.success()
                return result
        raise ChainUnavailable()  # pragma: no cover - the loop returns or raises

    async def block_number(self) -> int:
        return int(await self.call(lambda: self.w3.eth.block_number, "eth_blockNumber"))

    async def block_hash(self, number: int) -> str:
        block = await self.call(lambda: self.w3.eth.get_block(number), "eth_getBlockByNumber")
        return hex0x(block["hash"])

    async def block_header(self, block: int | Literal["latest"]) -> BlockHeader:
        data = await self.call(lambda: self.w3.eth.get_block(block), "eth_getBlockByNumber")
        return BlockHeader(
            number=int(data["number"]),
            hash=hex0x(data["hash"]),
            parent_hash=hex0x(data["parentHash"]),
            timestamp=int(data["timestamp"]),
        )

    async def block_timestamp(self, number: int) -> int:
        block = await self.call(lambda: self.w3.eth.get_block(number), "eth_getBlockByNumber")
        return int(block["timestamp"])

    async def subscription_expiry(self, address: str) -> int:
        checksum = AsyncWeb3.to_checksum_address(address)
        result: Any = await self.call(
            lambda: self.subscriptions.functions.expiresAt(checksum).call(), function="expiresAt"
        )
        return int(result)

    async def price_per_period(self) -> int:
        result: Any = await self.call(
            lambda: self.subscriptions.functions.pricePerPeriod().call(), function="pricePerPeriod"
        )
        return int(result)

    async def node(self, node_id: str) -> OnChainNode:
        key = bytes.fromhex(node_id.removeprefix("0x"))
        raw: Any = await self.call(
            lambda: self.registry.functions.getNode(key).call(), function="getNode"
        )
        operator, agent, stake, status, unbonding_end, metadata_uri = raw
        active: Any = await self.call(
            lambda: self.registry.functions.isActive(key).call(), function="isActive"
        )
        return OnChainNode(
            node_id=node_id.lower(),
            operator=operator.lower(),
            agent=agent.lower(),
            stake=int(stake),
            status=NODE_STATUSES[int(status)],
            unbonding_end=int(unbonding_end),
            metadata_uri=metadata_uri,
            active=bool(active),
        )

    async def get_logs(self, params: FilterParams) -> list[LogReceipt]:
        """Raises LogQueryRejected when the node refuses the query (ask for fewer blocks), and
        ChainUnavailable when it cannot be reached.

        The logs are read as plain JSON and typed here (web3's result formatters cost about
        0.5 ms a log: half of a 10,000-event catch-up)."""
        request = {
            key: hex(value) if isinstance(value, int) else value for key, value in params.items()
        }

        async def fetch() -> list[LogReceipt]:
            response = await self.w3.provider.make_request(RPCEndpoint("eth_getLogs"), [request])
            error = response.get("error")
            if error is not None:
                message = error.get("message") if isinstance(error, dict) else None
                raise LogQueryRejected(str(message or error))
            return [_log_receipt(raw) for raw in response["result"]]

        return await self.call(fetch, "eth_getLogs")

    async def aclose(self) -> None:
        """Closes the HTTP session (the provider keeps one open)."""
        await self.w3.provider.disconnect()

    async def ping(self) -> bool:
        try:
            await self.block_number()
        except ChainUnavailable:
            return False
        return True


# Logs come from a handful of contracts; eth_utils' checksum costs ~150 us an address.
_checksummed = functools.lru_cache(maxsize=256)(to_checksum_address)


def _log_receipt(raw: dict[str, Any]) -> LogReceipt:
    """A log as eth_getLogs returns it (hex strings), typed as web3 would type it."""
    return {
        "address": _checksummed(raw["address"]),
        "topics": [HexBytes(topic) for topic in raw["topics"]],
        "data": HexBytes(raw["data"]),
        "blockNumber": BlockNumber(int(raw["blockNumber"], 16)),
        "blockHash": HexBytes(raw["blockHash"]),
        "transactionHash": HexBytes(raw["transactionHash"]),
        "transactionIndex": int(raw["transactionIndex"], 16),
        "logIndex": int(raw["logIndex"], 16),
        "removed": bool(raw.get("removed", False)),
    }
