"""What the HTTP benchmarks run against: a fresh anvil with the real deployment, a throwaway
PostgreSQL database (migrated), the control plane under uvicorn (one worker) and the bare
FastAPI baseline under the same uvicorn; and the chain data the requests need (nodes registered
on-chain and here, paying subscribers), indexed before anything is measured."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr
from web3 import AsyncWeb3

from control_plane.agent.feed import asyncpg_dsn
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.migrate import upgrade
from control_plane.paths import REPO_ROOT
from control_plane.settings import Settings
from tests.database import admin_database_url, scratch_database
from tests.support.builders import (
    MIN_STAKE,
    NDS,
    fresh_wallet,
    node_headers,
    paying_subscriber,
    register_on_chain,
    wallet_headers,
)
from tests.support.devchain import deploy, running_anvil

UVICORN = str(Path(sys.executable).parent / "uvicorn")
BENCH_TOKEN_TTL_SECONDS = 4 * 3600  # longer than any benchmark run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def random_wg_key() -> str:
    """A WireGuard public key as a client sends it (any 32 bytes, base64)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def uvicorn_server(
    target: str, env: Mapping[str, str], cwd: Path, *, factory: bool = False, workers: int = 1
) -> Iterator[Server]:
    """`uvicorn target` on a free loopback port, until the block ends; no access log (neither
    server writes one, so neither pays for it)."""
    port = free_port()
    args = [UVICORN, target, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    if factory:
        args.append("--factory")
    log = tempfile.NamedTemporaryFile(prefix="nodus-bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        args, env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    failed = False
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/", timeout=2).status_code < 500:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start; see {log.name}")
            time.sleep(0.2)
        failed = True  # until the block ends without raising
        yield Server(url, process)
        failed = False
    finally:
        died = failed or process.poll() is not None
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        if died:  # keep what it said
            print(f"bench: {target} failed or stopped early; its log: {log.name}", file=sys.stderr)
        else:
            Path(log.name).unlink(missing_ok=True)


@dataclass
class Fixture:
    """The chain data of the HTTP benchmarks."""

    node_ids: list[str]
    subscribers: list[LocalAccount]
    node_token: dict[str, str]  # headers of node 0's agent

    def wallet(self, settings: Settings, account: LocalAccount) -> dict[str, str]:
        return wallet_headers(settings, account.address)


@dataclass
class Stack:
    settings: Settings  # what the server runs with (tokens are minted with its secrets)
    env: dict[str, str]
    deployment: Deployment
    w3: Web3Client
    rpc_url: str


def server_env(settings: Settings) -> dict[str, str]:
    return {
        "NODUS_DATABASE_URL": settings.database_url,
        "NODUS_RPC_URL": settings.rpc_url,
        "NODUS_CHAIN_ID": str(settings.chain_id),
        "NODUS_DEPLOYMENTS_DIR": str(settings.deployments_dir),
        "NODUS_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "NODUS_ACCESS_TOKEN_TTL_SECONDS": str(settings.access_token_ttl_seconds),
        "NODUS_API_KEY_SECRET": settings.api_key_secret.get_secret_value(),
        "NODUS_DATA_KEY": settings.data_key.get_secret_value(),
        "NODUS_ALLOW_PRIVATE_ENDPOINTS": "true",
        "NODUS_PROBER_ENABLED": "false",  # no probe rounds in the middle of a measurement
        "NODUS_DEVICE_LIMIT": "40",  # P2 issues 5 per subscriber per run, up to 8 runs
        "NODUS_CONFIG_CHANGES_PER_MINUTE": "100000",
        "NODUS_LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def running_stack() -> Iterator[Stack]:
    with (
        running_anvil() as anvil,
        admin_database_url() as admin,
        scratch_database(admin) as database_url,
        tempfile.TemporaryDirectory() as out,
    ):
        deploy(anvil.rpc_url, Path(out))
        asyncio.run(upgrade(database_url))
        settings = Settings(
            database_url=database_url,
            rpc_url=anvil.rpc_url,
            chain_id=31337,
            deployments_dir=Path(out),
            jwt_secret=SecretStr(secrets.token_urlsafe(32)),
            api_key_secret=SecretStr(secrets.token_urlsafe(32)),
            data_key=SecretStr(secrets.token_urlsafe(32)),
            # Tokens minted before a soak must outlive it (ramp + --soak-minutes on a loaded
            # machine passes the default 15 min): a soak of expired tokens measures 401s.
            access_token_ttl_seconds=BENCH_TOKEN_TTL_SECONDS,
        )
        w3: Web3Client = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil.rpc_url))
        deployment = Deployment.for_chain(31337, Path(out))
        yield Stack(settings, server_env(settings), deployment, w3, anvil.rpc_url)


async def build_fixture(stack: Stack, api_url: str, nodes: int, subscribers: int) -> Fixture:
    """`nodes` WireGuard nodes (one operator) registered on-chain and here, `subscribers`
    paying wallets; returns once the indexer has read every block."""
    w3, deployment, settings = stack.w3, stack.deployment, stack.settings
    operator = await fresh_wallet(w3, deployment, nodes * MIN_STAKE + NDS)
    node_ids: list[str] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        for i in range(nodes):
            node_id = await register_on_chain(w3, deployment, operator)
            body = {
                "node_id": node_id,
                "protocols": ["wireguard"],
                "endpoint": f"127.0.0.1:{20_000 + i}",
                "country": "DE",
                "wireguard_public_key": random_wg_key(),
            }
            response = await http.post(
                "/v1/nodes", json=body, headers=wallet_headers(settings, operator.address)
            )
            response.raise_for_status()
            node_ids.append(node_id)
    payers = [await paying_subscriber(w3, deployment) for _ in range(subscribers)]
    await wait_indexed(stack)
    return Fixture(node_ids, payers, node_headers(settings, node_ids[0]))


async def wait_indexed(stack: Stack, patience: float = 120) -> None:
    """Until the server's indexer job has read up to the chain's head."""
    head = await stack.w3.eth.block_number
    connection = await asyncpg.connect(asyncpg_dsn(stack.settings.database_url))
    try:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            cursor = await connection.fetchval("SELECT max(next_block) FROM chain_cursors")
            if cursor is not None and cursor > head:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("the indexer did not catch up with the chain")
    finally:
        await connection.close()


def source_of(ref: str, into: Path) -> Path:
    """The control plane as it is at git `ref`, extracted into `into` (for a before/after)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref, "control_plane"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
