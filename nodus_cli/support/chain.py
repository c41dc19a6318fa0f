"""Plumbing shared by the `nodus` sub-commands that talk to the chain as a user.

- options every command takes (`--rpc-url`, `--deployments-dir`, `--key-file`, `--api-url`);
- the user's wallet: a 0600 key file, an encrypted keystore (passphrase prompt or
  NODUS_PASSPHRASE) or NODUS_PRIVATE_KEY; the key is never printed, logged or put in a message;
- exact parsing of user input: NDS amounts ("12.5" -> wei, with Decimal), addresses (EIP-55
  checksums checked when mixed-case), bytes32 values;
- sending a transaction signed with the user's key, with a spinner while it is mined, and
  custom errors decoded from the contracts' ABIs;
- chunked event-log queries; anvil time travel, refused on any chain but a local one.

Results go to stdout (`console`); progress, warnings and errors to stderr (`err_console`).
Expected failures raise `CliError`, which `run` turns into one red line and an exit code
(2: bad input or configuration, 1: the chain or the API said no). Unexpected ones propagate.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar, cast

import aiohttp
import typer
from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak
from rich.console import Console
from rich.markup import escape
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.contract.async_contract import AsyncContractEvent, AsyncContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.logs import DISCARD
from web3.types import EventData, TxParams, TxReceipt, Wei

from control_plane.chain.contracts import (
    CONTRACT_NAMES,
    Deployment,
    DeploymentError,
    Web3Client,
    contract,
    load_abi,
)

T = TypeVar("T")

LOCAL_CHAIN_ID: Final = 31337
WEI_PER_NDS: Final = 10**18
UINT256_MAX: Final = 2**256 - 1
DEFAULT_RPC_URL: Final = "http://127.0.0.1:8545"
DEFAULT_API_URL: Final = "http://127.0.0.1:8000"
RECEIPT_TIMEOUT_S: Final = 180.0
# NDS vote checkpoints are keyed by timestamp: a delegation estimated in the second of the last
# checkpoint updates it in place, but mined a second later it writes a new slot (22,100 gas).
FRESH_SLOT_GAS: Final = 25_000
LOG_CHUNK_BLOCKS: Final = 10_000

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


class CliError(Exception):
    """A failure the user can act on: one message, one exit code, no traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(CliError):
    """Bad input or configuration (exit code 2, like a usage error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


_connections: list[Web3Client] = []


async def _closing(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return await main()
    finally:
        while _connections:
            await _connections.pop().provider.disconnect()


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a command's async body; expected failures become a red line and an exit code.
    Chain connections opened by `connect` are closed when it ends."""
    try:
        return asyncio.run(_closing(main))
    except CliError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(code=exc.exit_code) from None
    except DeploymentError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from None


# --- options ------------------------------------------------------------------------------

RpcUrlOption = Annotated[
    str,
    typer.Option("--rpc-url", envvar="NODUS_RPC_URL", help="JSON-RPC endpoint of the chain."),
]
DeploymentsDirOption = Annotated[
    Path,
    typer.Option(
        "--deployments-dir",
        envvar="NODUS_DEPLOYMENTS_DIR",
        help="Directory of <chain id>.json deployment files.",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="NODUS_KEY_FILE",
        help=(
            "Your key: a file holding the hex private key (mode 0600) or an encrypted JSON "
            "keystore (passphrase from NODUS_PASSPHRASE or a prompt). "
            "Without it, NODUS_PRIVATE_KEY is used."
        ),
    ),
]
ApiUrlOption = Annotated[
    str,
    typer.Option("--api-url", envvar="NODUS_API_URL", help="Base URL of the Nodus control plane."),
]
AdvanceTimeOption = Annotated[
    bool,
    typer.Option(
        "--advance-time",
        help="Local chain only (chain id 31337): move anvil's clock past the delay first.",
    ),
]


# --- parsing user input -------------------------------------------------------------------

_AMOUNT = re.compile(r"\d+(\.\d+)?|\.\d+")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX = re.compile(r"0x([0-9a-fA-F]{2})*")


def parse_nds(text: str) -> int:
    """An NDS amount as the user writes it ("12", "12.5", "0.000000000000000001") -> wei,
    exactly: no float, no rounding; more than 18 decimals is an error, not a truncation."""
    value = text.strip().replace("_", "")
    if not _AMOUNT.fullmatch(value):
        raise typer.BadParameter(
            f"{text!r} is not an NDS amount: write a plain decimal number such as 12 or 12.5"
        )
    with localcontext() as ctx:
        ctx.prec = len(value) + 40
        ctx.traps[Inexact] = True
        try:
            wei = Decimal(value) * WEI_PER_NDS
        except (InvalidOperation, Inexact) as exc:  # pragma: no cover - the regex rules it out
            raise typer.BadParameter(f"{text!r} is not an NDS amount") from exc
    if wei != wei.to_integral_value():
        raise typer.BadParameter(f"{text!r} has more than 18 decimals (NDS has 18)")
    amount = int(wei)
    if amount > UINT256_MAX:
        raise typer.BadParameter(f"{text!r} NDS does not fit in a uint256")
    return amount


def format_nds(wei: int) -> str:
    """wei -> "12.5 NDS", exact, with thousands separators ("50,000,000 NDS")."""
    with localcontext() as ctx:
        ctx.prec = 100
        nds = (Decimal(wei) / WEI_PER_NDS).normalize()
    return f"{nds:,f} NDS"


def parse_address(text: str) -> ChecksumAddress:
    """0x + 40 hex digits; a mixed-case address must carry a valid EIP-55 checksum."""
    value = text.strip()
    if not _ADDRESS.fullmatch(value):
        raise typer.BadParameter(
            f"{text!r} is not an address: expected 0x followed by 40 hex digits"
        )
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise typer.BadParameter(
            f"{text!r} has a wrong EIP-55 checksum (mixed case that does not match): a typo?"
        )
    return to_checksum_address(value)


def parse_bytes32(text: str) -> bytes:
    """0x + 64 hex digits -> 32 bytes."""
    value = text.strip()
    if not _BYTES32.fullmatch(value):
        raise typer.BadParameter(
            f"{text!r} is not a bytes32: expected 0x followed by 64 hex digits"
        )
    return bytes.fromhex(value[2:])


def parse_hex(text: str) -> bytes:
    """0x-prefixed hex with whole bytes (calldata)."""
    value = text.strip()
    if not _HEX.fullmatch(value):
        raise typer.BadParameter(f"{text!r} is not 0x-prefixed hex of whole bytes")
    return bytes.fromhex(value[2:])


def text_to_bytes32(text: str) -> bytes:
    """A short reason as Solidity's bytes32("...") holds it (UTF-8, zero-padded on the right);
    a value already written as 0x + 64 hex digits is taken as is."""
    if _BYTES32.fullmatch(text.strip()):
        return bytes.fromhex(text.strip()[2:])
    raw = text.encode()
    if len(raw) > 32:
        raise typer.BadParameter(
            f"the reason is {len(raw)} bytes; a bytes32 holds at most 32 (put details in the "
            "description)"
        )
    return raw.ljust(32, b"\x00")


def bytes32_to_text(value: bytes) -> str:
    """The inverse of `text_to_bytes32` where the value is printable text, else hex."""
    stripped = value.rstrip(b"\x00")
    try:
        decoded = stripped.decode()
    except UnicodeDecodeError:
        return "0x" + value.hex()
    return decoded if decoded.isprintable() else "0x" + value.hex()


def hex0x(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def short_hex(value: bytes | str, keep: int = 6) -> str:
    text = value if isinstance(value, str) else hex0x(value)
    return text if len(text) <= 2 + 2 * keep else f"{text[: 2 + keep]}…{text[-keep:]}"


def format_time(timestamp: int, now: int | None = None) -> str:
    """A unix time as UTC, with how far it is from the chain's `now`."""
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if now is None:
        return when
    delta = timestamp - now
    if delta == 0:
        return f"{when} (now)"
    return (
        f"{when} ({'in ' if delta > 0 else ''}{duration(abs(delta))}{' ago' if delta < 0 else ''})"
    )


def duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            return f"{whole} {unit}" + (f" {duration(rest)}" if rest and unit != "min" else "")
    return f"{seconds} s"


# --- the user's wallet --------------------------------------------------------------------


def load_account(key_file: Path | None) -> LocalAccount:
    """The signing key: `--key-file` (hex key with mode 0600, or an encrypted keystore), else
    NODUS_PRIVATE_KEY. Messages never include the key or the passphrase."""
    if key_file is not None:
        return _account_from_file(key_file)
    from_env = os.environ.get("NODUS_PRIVATE_KEY")
    if from_env:
        return _account_from_hex(from_env, "NODUS_PRIVATE_KEY")
    raise UsageError(
        "this command signs a transaction: pass --key-file PATH (a 0600 key file or an "
        "encrypted keystore) or set NODUS_PRIVATE_KEY"
    )


def _account_from_hex(text: str, source: str) -> LocalAccount:
    value = text.strip()
    value = value[2:] if value[:2].lower() == "0x" else value
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise UsageError(f"{source} does not hold a private key (expected 64 hex digits)")
    try:
        account: LocalAccount = Account.from_key(bytes.fromhex(value))
    except Exception:  # eth-keys rejects zero or out-of-range keys; its message is not needed
        raise UsageError(f"{source} does not hold a valid secp256k1 private key") from None
    return account


def _account_from_file(path: Path) -> LocalAccount:
    try:
        info = path.stat()
        raw = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"no key file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read key file {path}: {type(exc).__name__}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"key file {path} is not a regular file")
    keystore = _keystore(raw)
    if keystore is not None:
        return _account_from_keystore(path, keystore)
    if info.st_mode & 0o077:
        raise UsageError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    return _account_from_hex(raw, f"key file {path}")


def _keystore(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and ("crypto" in parsed or "Crypto" in parsed):
        return cast(dict[str, Any], parsed)
    return None


def _account_from_keystore(path: Path, keystore: dict[str, Any]) -> LocalAccount:
    passphrase = os.environ.get("NODUS_PASSPHRASE")
    if passphrase is None:
        if not sys.stdin.isatty():
            raise UsageError(f"{path} is an encrypted keystore: set NODUS_PASSPHRASE")
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    try:
        key = Account.decrypt(keystore, passphrase)
    except ValueError:
        raise UsageError(f"cannot decrypt keystore {path}: wrong passphrase?") from None
    except Exception:
        raise UsageError(f"{path} is not a keystore this version understands") from None
    account: LocalAccount = Account.from_key(key)
    return account


# --- the chain ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chain:
    """A connection to one chain and the Nodus deployment on it."""

    w3: Web3Client
    rpc_url: str
    chain_id: int
    deployment: Deployment

    def contract(self, name: str) -> AsyncContract:
        return contract(self.w3, self.deployment, name)

    @property
    def is_local(self) -> bool:
        return self.chain_id == LOCAL_CHAIN_ID

    async def now(self) -> int:
        """The chain's time: the latest block's timestamp (the contracts' clock)."""
        block = await rpc(self, self.w3.eth.get_block("latest"))
        return int(block["timestamp"])


async def connect(rpc_url: str, deployments_dir: Path, *, rpc_timeout: float = 30.0) -> Chain:
    w3: Web3Client = AsyncWeb3(
        AsyncWeb3.AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": rpc_timeout})
    )
    _connections.append(w3)
    try:
        chain_id = await w3.eth.chain_id
    except (OSError, TimeoutError, aiohttp.ClientError, Web3Exception, ValueError) as exc:
        raise CliError(f"cannot reach the chain at {rpc_url}: {_reason(exc)}") from None
    deployment = Deployment.for_chain(chain_id, deployments_dir)
    return Chain(w3=w3, rpc_url=rpc_url, chain_id=chain_id, deployment=deployment)


async def rpc(chain: Chain, call: Awaitable[T]) -> T:
    """Awaits a read; a dropped connection becomes a CliError, a revert a decoded one."""
    try:
        return await call
    except (ContractCustomError, ContractLogicError) as exc:
        raise CliError(f"the chain refused a read: {describe_revert(exc)}") from None
    except (OSError, TimeoutError, aiohttp.ClientError, Web3RPCError) as exc:
        raise CliError(f"the chain at {chain.rpc_url} failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def require_local(chain: Chain, what: str = "--advance-time") -> None:
    if not chain.is_local:
        raise UsageError(
            f"{what} moves anvil's clock and works only on a local chain (chain id "
            f"{LOCAL_CHAIN_ID}); the chain at {chain.rpc_url} has chain id {chain.chain_id}"
        )


async def advance_to(chain: Chain, timestamp: int, why: str) -> None:
    """Moves anvil's clock until the latest block's timestamp is at least `timestamp`
    (evm_increaseTime + evm_mine), so the next transaction runs at or after it."""
    require_local(chain)
    now = await chain.now()
    if now >= timestamp:
        return
    for _ in range(3):
        delta = timestamp - now
        for method, params in (("evm_increaseTime", [delta]), ("evm_mine", [])):
            response = await rpc(chain, chain.w3.provider.make_request(method, params))
            if "error" in response:
                raise CliError(f"{method} failed: {response['error']}")
        now = await chain.now()
        if now >= timestamp:
            err_console.print(f"[dim]advanced the local clock by {duration(delta)} ({why})[/dim]")
            return
    raise CliError(f"could not move the local clock to {timestamp} (now {now})")


# --- revert reasons -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ErrorAbi:
    name: str
    types: list[str]
    names: list[str]


def _abi_type(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind


@cache
def _error_abis() -> dict[bytes, _ErrorAbi]:
    errors: dict[bytes, _ErrorAbi] = {}
    for name in CONTRACT_NAMES:
        try:
            abi = load_abi(name)
        except DeploymentError:  # pragma: no cover - a build without that artifact
            continue
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item.get("inputs", [])]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            errors[selector] = _ErrorAbi(
                item["name"], types, [i.get("name", "") for i in item.get("inputs", [])]
            )
    return errors


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


def decode_custom_error(data: str | bytes) -> str:
    """`0x<selector><args>` -> `Name(arg=value, ...)` using every Nodus ABI (OpenZeppelin's
    errors included); unknown data is returned as hex."""
    raw = bytes.fromhex(data[2:] if data[:2] == "0x" else data) if isinstance(data, str) else data
    found = _error_abis().get(raw[:4])
    if found is None:
        return "0x" + raw.hex() if raw else "(no reason given)"
    try:
        values = abi_decode(found.types, raw[4:])
    except DecodingError:
        return f"{found.name}(0x{raw[4:].hex()})"
    parts = []
    for arg, value in zip(found.names, values, strict=True):
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


def describe_revert(exc: Exception) -> str:
    if isinstance(exc, ContractCustomError):
        data = exc.data if isinstance(exc.data, (str, bytes)) else str(exc.message)
        return decode_custom_error(data)
    if isinstance(exc, ContractPanicError):
        return f"panic: {exc.message}"
    if isinstance(exc, ContractLogicError):
        if isinstance(exc.data, str) and exc.data.startswith("0x") and len(exc.data) >= 10:
            return decode_custom_error(exc.data)
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
        raise CliError(f"{label}: the chain would revert it: {describe_revert(exc)}") from None
    except Web3RPCError as exc:
        raise CliError(f"{label}: {_rpc_message(exc)}") from None
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        raise CliError(f"{label}: the chain at {chain.rpc_url} failed: {_reason(exc)}") from None
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
