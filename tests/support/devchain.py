"""A local anvil chain for development, tests and benchmarks: start one, deploy the contracts
with scripts/deploy, use anvil's funded dev accounts, send signed transactions, move the clock.
Never used against a real chain (the production transaction sender is separate)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract.async_contract import AsyncContractFunction
from web3.types import TxParams, TxReceipt, Wei

from control_plane.chain.contracts import Web3Client
from control_plane.paths import REPO_ROOT

ANVIL = REPO_ROOT / "node_modules" / ".bin" / "anvil"
# anvil's dev accounts come from this well-known mnemonic; they are funded only on local chains.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass(frozen=True, slots=True)
class Anvil:
    rpc_url: str
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_anvil() -> Iterator[Anvil]:
    """A fresh anvil on a free port (never 8545, so a running dev stack is left alone)."""
    port = free_port()
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rpc_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"anvil did not start: {err}") from None
                time.sleep(0.1)
        yield Anvil(rpc_url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def deploy(rpc_url: str, out_dir: Path, extra_env: Mapping[str, str] | None = None) -> None:
    """Deploys with scripts/deploy (the project's own path); it writes <out_dir>/<chain>.json.
    `extra_env` adds NODUS_* parameters (a chain other than 31337 needs NODUS_GUARDIAN, and
    NODUS_HOLDERS and NODUS_HOLDER_NDS: the circulating supply's holders)."""
    env = {**os.environ, **(extra_env or {}), "NODUS_DEPLOYMENTS_DIR": str(out_dir)}
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "deploy"), "--rpc-url", rpc_url],
        check=True,
        env=env,
        capture_output=True,
    )


def dev_account(index: int) -> LocalAccount:
    """anvil's dev account `index` (0 deploys, 1 is the oracle; all hold 100,000 NDS)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


async def transact(
    w3: Web3Client, sender: LocalAccount, call: AsyncContractFunction, value: int = 0
) -> TxReceipt:
    """Signs `call` locally, sends it, waits for the receipt and checks it succeeded."""
    params: TxParams = {
        "from": sender.address,
        "nonce": await w3.eth.get_transaction_count(sender.address, "pending"),
        "value": Wei(value),
    }
    tx = await call.build_transaction(params)
    # Vote checkpoints are keyed by timestamp: estimated in the second of the last checkpoint, a
    # delegation updates it in place, but mined a second later it writes a fresh slot.
    tx["gas"] = int(tx["gas"]) * 6 // 5 + 25_000
    signed = sender.sign_transaction(cast(dict[str, Any], tx))
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt: TxReceipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


async def send_eth(w3: Web3Client, sender: LocalAccount, to: str, value: int) -> TxReceipt:
    tx: dict[str, Any] = {
        "from": sender.address,
        "to": to,
        "value": value,
        "nonce": await w3.eth.get_transaction_count(sender.address, "pending"),
        "gas": 21_000,
        "maxFeePerGas": await w3.eth.gas_price * 2,
        "maxPriorityFeePerGas": 0,
        "chainId": await w3.eth.chain_id,
    }
    signed = sender.sign_transaction(tx)
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt: TxReceipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    return receipt


async def advance_time(w3: Web3Client, seconds: int) -> None:
    """Moves anvil's clock forward and mines a block at the new time."""
    await w3.provider.make_request("evm_increaseTime", [seconds])
    await w3.provider.make_request("evm_mine", [])
