"""The chain as a `nodus` user meets it: a connection to one chain and its Nodus deployment,
reads that fail as one message, transactions signed with the user's key (a spinner while they
are mined, custom errors decoded from the contracts' ABIs), chunked event-log queries, and the
contracts' public constants read once per invocation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import typer
from rich.markup import escape

from nodus_cli.support.exits import Unreachable, UsageError
from nodus_cli.support.output import CliError, err_console, hex0x
from nodus_cli.tunnel.state import KILL_SWITCH_NEXT_STEP, kill_switch_is_on

# web3, aiohttp and the contracts' ABIs load only when a command reaches the chain (inside the
# functions below): `nodus --help`, `nodus up` and the API-only commands never need them.
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import AsyncContract
    from web3.contract.async_contract import AsyncContractEvent, AsyncContractFunction
    from web3.exceptions import Web3RPCError
    from web3.types import EventData, TxParams, TxReceipt

    from control_plane.chain.contracts import Deployment, Web3Client
    from control_plane.chain.reverts import RevertDecoder

T = TypeVar("T")

LOCAL_CHAIN_ID: Final = 31337
RECEIPT_TIMEOUT_S: Final = 180.0
# NDS vote checkpoints are keyed by timestamp: a delegation estimated in the second of the last
# checkpoint updates it in place, but mined a second later it writes a new slot (22,100 gas).
FRESH_SLOT_GAS: Final = 25_000
LOG_CHUNK_BLOCKS: Final = 10_000

_connections: list[Web3Client] = []


async def _closing(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return await main()
    finally:
        while _connections:
            await _connections.pop().provider.disconnect()


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a command's async body; expected failures become a red line (and the next step) and
    an exit code (support/exits.py).
    Chain connections opened by `connect` are closed when it ends."""
    try:
        return asyncio.run(_closing(main))
    except CliError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}")
        next_step = exc.next_step
        if isinstance(exc, Unreachable) and kill_switch_is_on():
            next_step = KILL_SWITCH_NEXT_STEP
        if next_step:
            err_console.print(f"[bold]next:[/bold] {escape(next_step)}")
        raise typer.Exit(code=exc.exit_code) from None


# --- the chain ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chain:
    """A connection to one chain and the Nodus deployment on it."""

    w3: Web3Client
    rpc_url: str
    chain_id: int
    deployment: Deployment
    reverts: RevertDecoder = field(default_factory=lambda: _revert_decoder())
    # The contracts' public constants read so far (this invocation's cache).
    constants: dict[tuple[str, str], int] = field(default_factory=dict)

    def contract(self, name: str) -> AsyncContract:
        from control_plane.chain.contracts import DeploymentError, contract

        try:
            return contract(self.w3, self.deployment, name)
        except DeploymentError as exc:  # no artifact: a setup problem, not a refusal
            raise UsageError(str(exc)) from None

    async def constant(self, name: str, getter: str) -> int:
        """A public constant of contract `name` (`MAX_CHALLENGE_PERIOD`), read through its
        view the first time and kept for the rest of the invocation."""
        key = (name, getter)
        if key not in self.constants:
            call = getattr(self.contract(name).functions, getter)()
            self.constants[key] = int(await rpc(self, call.call()))
        return self.constants[key]

    @property
    def is_local(self) -> bool:
        return self.chain_id == LOCAL_CHAIN_ID

    async def now(self) -> int:
        """The chain's time: the latest block's timestamp (the contracts' clock)."""
        block = await rpc(self, self.w3.eth.get_block("latest"))
        return int(block["timestamp"])


def _revert_decoder() -> RevertDecoder:
    from control_plane.chain.reverts import RevertDecoder

    return RevertDecoder(missing_ok=True)


async def connect(rpc_url: str, deployments_dir: Path, *, rpc_timeout: float = 30.0) -> Chain:
    import aiohttp
    from web3 import AsyncWeb3
    from web3.exceptions import Web3Exception

    from control_plane.chain.contracts import Deployment, DeploymentError

    w3: Web3Client = AsyncWeb3(
        AsyncWeb3.AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": rpc_timeout})
    )
    _connections.append(w3)
    try:
        chain_id = await w3.eth.chain_id
    except (OSError, TimeoutError, aiohttp.ClientError, Web3Exception, ValueError) as exc:
        raise Unreachable(
            f"cannot reach the chain at {rpc_url}: {_reason(exc)}",
            "start the chain's node, or point --rpc-url (NODUS_RPC_URL) at a reachable one",
        ) from None
    try:
        deployment = Deployment.for_chain(chain_id, deployments_dir)
    except DeploymentError as exc:
        raise UsageError(str(exc)) from None
    return Chain(w3=w3, rpc_url=rpc_url, chain_id=chain_id, deployment=deployment)


async def rpc(chain: Chain, call: Awaitable[T]) -> T:
    """Awaits a read; a dropped connection becomes a CliError, a revert a decoded one."""
    import aiohttp
    from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

    try:
        return await call
    except (ContractCustomError, ContractLogicError) as exc:
        raise CliError(f"the chain refused a read: {describe_revert(exc, chain.reverts)}") from None
    except Web3RPCError as exc:
        raise CliError(f"the chain at {chain.rpc_url} failed: {_reason(exc)}") from None
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        raise Unreachable(f"the chain at {chain.rpc_url} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# --- revert reasons -----------------------------------------------------------------------

PROPOSAL_STATES: Final = (
    "Pending",
    "Active",
    "Canceled",
    "Defeated",
    "Succeeded",
    "Queued",
    "Expired",
    "Executed",
)


def decode_custom_error(data: str | bytes, decoder: RevertDecoder) -> str:
    """`0x<selector><args>` -> `Name(arg=value, ...)` using every Nodus ABI (OpenZeppelin's
    errors included); unknown data is returned as hex."""
    from control_plane.chain.reverts import revert_bytes

    raw = revert_bytes(data)
    found = decoder.decode(raw)
    if found is None:
        return "0x" + raw.hex() if raw else "(no reason given)"
    if found.values is None:
        return f"{found.name}(0x{found.raw_args.hex()})"
    parts = []
    for arg, value in zip(found.abi.names, found.values, strict=True):
        shown = _show_error_arg(found.name, arg, value)
        parts.append(f"{arg}={shown}" if arg else shown)
    return f"{found.name}({', '.join(parts)})"


def _show_error_arg(error: str, arg: str, value: object) -> str:
    if error == "GovernorUnexpectedProposalState":
        if arg == "current" and isinstance(value, int):
            return PROPOSAL_STATES[value]
        if arg == "expectedStates" and isinstance(value, bytes):
            bits = int.from_bytes(value, "big")
            return "|".join(s for i, s in enumerate(PROPOSAL_STATES) if bits >> i & 1)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def describe_revert(exc: Exception, decoder: RevertDecoder) -> str:
    from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

    if isinstance(exc, ContractCustomError):
        data = exc.data if isinstance(exc.data, (str, bytes)) else str(exc.message)
        return decode_custom_error(data, decoder)
    if isinstance(exc, ContractPanicError):
        return f"panic: {exc.message}"
    if isinstance(exc, ContractLogicError):
        if isinstance(exc.data, str) and exc.data.startswith("0x") and len(exc.data) >= 10:
            return decode_custom_error(exc.data, decoder)
        return str(exc.message or exc)
    return str(exc)


# --- transactions -------------------------------------------------------------------------


async def send(
    chain: Chain,
    account: LocalAccount,
    call: AsyncContractFunction,
    label: str,
    *,
    value: int = 0,
) -> TxReceipt:
    """Signs `call` with the user's key, sends it, waits for its receipt behind a spinner and
    checks that it succeeded. A call the chain would revert is not sent: the decoded reason is
    the error. Gas comes from an estimate plus 20% and FRESH_SLOT_GAS of headroom; fees from the
    node."""
    import aiohttp
    from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3RPCError
    from web3.types import Wei

    w3 = chain.w3
    nonce = await rpc(chain, w3.eth.get_transaction_count(account.address, "pending"))
    params: TxParams = {
        "from": account.address,
        "nonce": nonce,
        "value": Wei(value),
        "chainId": chain.chain_id,
    }
    try:
        tx = await call.build_transaction(params)
    except (ContractCustomError, ContractLogicError) as exc:
        raise CliError(
            f"{label}: the chain would revert it: {describe_revert(exc, chain.reverts)}"
        ) from None
    except Web3RPCError as exc:
        raise CliError(f"{label}: {_rpc_message(exc)}") from None
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        raise Unreachable(f"{label}: the chain at {chain.rpc_url} failed: {_reason(exc)}") from None
    tx["gas"] = int(tx["gas"]) * 6 // 5 + FRESH_SLOT_GAS
    signed = account.sign_transaction(cast(dict[str, Any], tx))
    try:
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    except Web3RPCError as exc:
        raise CliError(f"{label}: the node refused the transaction: {_rpc_message(exc)}") from None
    shown = hex0x(tx_hash)
    with err_console.status(f"{label}: waiting for {shown} to be mined…"):
        try:
            receipt: TxReceipt = await w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.5
            )
        except TimeExhausted:
            raise CliError(
                f"{label}: {shown} was not mined within {RECEIPT_TIMEOUT_S:.0f} s; it may still "
                "be: check it before sending again"
            ) from None
    if receipt["status"] != 1:
        raise CliError(f"{label}: transaction {shown} reverted in block {receipt['blockNumber']}")
    err_console.print(
        f"[green]✓[/green] {label}: {shown} (block {receipt['blockNumber']}, "
        f"gas {receipt['gasUsed']:,})"
    )
    return receipt


def _rpc_message(exc: Web3RPCError) -> str:
    message = exc.rpc_response.get("error", {}) if exc.rpc_response else {}
    if isinstance(message, dict) and message.get("message"):
        return str(message["message"])
    return str(exc.message or exc)


def events_in(receipt: TxReceipt, event: AsyncContractEvent) -> list[EventData]:
    """The logs of `event` in `receipt` (others ignored)."""
    from web3.logs import DISCARD

    return list(event.process_receipt(receipt, errors=DISCARD))


async def get_logs(
    chain: Chain,
    event: AsyncContractEvent,
    *,
    from_block: int,
    to_block: int,
    argument_filters: dict[str, Any] | None = None,
    newest_first: bool = False,
    stop: Callable[[list[EventData]], bool] | None = None,
) -> list[EventData]:
    """`event`'s logs in [from_block, to_block], in chunks (halved when the node refuses a
    range); with `stop`, scanning ends at the first chunk for which it returns True."""
    import aiohttp
    from web3.exceptions import Web3RPCError

    found: list[EventData] = []
    chunk = LOG_CHUNK_BLOCKS
    lo, hi = from_block, to_block
    while lo <= hi:
        start, end = (
            (max(lo, hi - chunk + 1), hi) if newest_first else (lo, min(hi, lo + chunk - 1))
        )
        try:
            logs = await event.get_logs(
                from_block=start, to_block=end, argument_filters=argument_filters
            )
        except Web3RPCError as exc:
            if chunk > 1:
                chunk = max(1, chunk // 2)
                continue
            raise CliError(f"the chain refused a log query: {_rpc_message(exc)}") from None
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise CliError(f"the chain at {chain.rpc_url} failed: {_reason(exc)}") from None
        batch = list(logs)
        found.extend(reversed(batch) if newest_first else batch)
        if stop is not None and stop(batch):
            break
        if newest_first:
            hi = start - 1
        else:
            lo = end + 1
    return found
