"""Helpers for the `nodus` CLI tests: run the real typer app against the session's anvil (each
test's chain state is reverted by the root conftest), gather the dev accounts' own votes on a
representative, and serve hand-made API answers from a tiny local HTTP server."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner, Result

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.settings import Settings
from nodus_cli.app import app
from tests.e2e.stack import ControlPlane, free_tcp_port
from tests.support.devchain import Anvil, dev_account, transact

NDS = 10**18
# The local deployment's circulating supply: the ten dev accounts hold 100,000 NDS each, and the
# quorum is 4% of that (the treasury, reward pool and swap reserves never vote).
DEV_ACCOUNT_NDS = 100_000 * NDS
CIRCULATING = 10 * DEV_ACCOUNT_NDS
QUORUM = CIRCULATING * 4 // 100
# The representative is dev account 5; dev account 6 keeps its votes (tests delegate it late).
REPRESENTATIVE = 5
DELEGATORS = (0, 1, 2, 3, 4, 7, 8, 9)
REPRESENTATIVE_VOTES = (len(DELEGATORS) + 1) * DEV_ACCOUNT_NDS


@dataclass
class Cli:
    """Runs `nodus ...` in-process (typer's CliRunner) in a worker thread, since the commands
    run their own event loop; the environment points it at the test chain."""

    env: dict[str, str | None]

    async def __call__(
        self,
        *args: str,
        key: LocalAccount | None = None,
        env: Mapping[str, str | None] | None = None,
    ) -> Result:
        merged = {**self.env, **(env or {})}
        if key is not None:
            merged["NODUS_PRIVATE_KEY"] = key.key.hex()
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, app, list(args), env=merged, catch_exceptions=True
        )
        # Every outcome is an exit code, never an unexpected exception.
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result


@pytest.fixture
def cli(anvil: Anvil, deployments_dir: Path, tmp_path: Path) -> Cli:
    return Cli(
        {
            "NODUS_RPC_URL": anvil.rpc_url,
            "NODUS_DEPLOYMENTS_DIR": str(deployments_dir),
            # Nothing from the developer's shell leaks in: no key unless a test passes one.
            "NODUS_PRIVATE_KEY": None,
            "NODUS_KEY_FILE": None,
            "NODUS_PASSPHRASE": None,
            "NODUS_KEYSTORE_PASSWORD": None,
            "NODUS_API_URL": "http://127.0.0.1:9",
            # The keystore and token cache of this test only.
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        }
    )


def proposal_id_of(result: Result) -> int:
    match = re.search(r"proposal id: (\d+)", result.stdout)
    assert match, result.output
    return int(match.group(1))


@pytest.fixture
async def representative(w3: Web3Client, deployment: Deployment, cli: Cli) -> LocalAccount:
    """dev account 5, to which eight other dev accounts delegate their own 100,000 NDS (each
    signs its own delegation), self-delegated through the CLI: 900,000 NDS of votes, far above
    the 40,000 NDS quorum and a majority of the circulating supply."""
    voter = dev_account(REPRESENTATIVE)
    token = contract(w3, deployment, "NDSToken")
    for index in DELEGATORS:
        await transact(w3, dev_account(index), token.functions.delegate(voter.address))
    result = await cli("dao", "delegate", key=voter)
    assert result.exit_code == 0, result.output
    return voter


@dataclass
class FakeApi:
    """Answers GET requests from a dict of path -> (status, body bytes)."""

    url: str
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def json(self, path: str, body: object, status: int = 200) -> None:
        self.routes[path] = (status, json.dumps(body).encode())


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = api.routes.get(
                self.path, (404, b'{"error": {"code": "not_found", "message": "no such thing"}}')
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def flat(result: Result) -> str:
    """The output as one line of words: rich's error boxes wrap and frame long messages."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


@dataclass
class ServedControlPlane(ControlPlane):
    """The real control plane (uvicorn in a subprocess, jobs on) with extra NODUS_* settings."""

    extra: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        return {**super().environment(), **self.extra}


@pytest.fixture
async def served_api(
    settings: Settings, deployment: Deployment, tmp_path: Path
) -> AsyncIterator[ServedControlPlane]:
    """The control plane on a free port."""
    served = ServedControlPlane(settings, tmp_path, free_tcp_port())
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


@pytest.fixture
def control_plane(served_api: ServedControlPlane) -> ControlPlane:
    """The served control plane, by the name the node commands' tests use."""
    return served_api
