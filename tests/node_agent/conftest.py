"""Fixtures for the agent's unit tests: an agent key, a fake control plane served over HTTP,
configs built the way the agent reads them (environment overrides), and a fake backend."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from opentelemetry.trace import Tracer

from node_agent.agent import Agent
from node_agent.backends import PeerStats
from node_agent.client import ControlPlaneClient
from node_agent.config import AgentConfig, load_config
from node_agent.peers import Peer
from node_agent.state import StateStore
from tests.node_agent.fake_control_plane import FakeControlPlane


class FakeBackend:
    """Records what it is told to serve; can be made to fail."""

    def __init__(self) -> None:
        self.applies: list[tuple[Peer, ...]] = []
        self.live: tuple[Peer, ...] = ()
        self.fail: str | None = None
        self.peer_stats: list[PeerStats] = []

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        if self.fail:
            raise RuntimeError(self.fail)
        self.applies.append(peers)
        self.live = peers

    async def stats(self) -> list[PeerStats]:
        return list(self.peer_stats)

    def keys(self) -> set[str]:
        return {getattr(peer, "public_key", "") for peer in self.live}


async def until(condition: Callable[[], bool], seconds: float = 5, what: str = "it") -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - observing another task's progress
            await asyncio.sleep(0.01)


@pytest.fixture
def node_id() -> str:
    return "0x" + secrets.token_hex(32)


@pytest.fixture
def account() -> LocalAccount:
    created: LocalAccount = Account.create()
    return created


@pytest.fixture
async def fake(node_id: str, account: LocalAccount) -> AsyncIterator[FakeControlPlane]:
    server = FakeControlPlane(node_id=node_id, agent_address=account.address)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def make_config(tmp_path: Path, node_id: str) -> Callable[..., AgentConfig]:
    """An AgentConfig from NODUS_AGENT_* variables only (fast intervals); `overrides` are
    more variables, without the prefix (e.g. POOLS_IPV4="10.8.0.0/16"). The pools default to
    wide ones holding every address the tests hand out (an agent without pools never runs)."""

    def make(url: str, **overrides: str) -> AgentConfig:
        environ = {
            "NODUS_AGENT_NODE_ID": node_id,
            "NODUS_AGENT_CONTROL_PLANE_URL": url,
            "NODUS_AGENT_STATE_DIR": str(tmp_path / "state"),
            "NODUS_AGENT_CONTROL_PLANE_POLL_WAIT_SECONDS": "2",
            "NODUS_AGENT_CONTROL_PLANE_REQUEST_TIMEOUT_SECONDS": "2",
            "NODUS_AGENT_CONTROL_PLANE_RETRY_ATTEMPTS": "2",
            "NODUS_AGENT_CONTROL_PLANE_BACKOFF_BASE_SECONDS": "0.01",
            "NODUS_AGENT_CONTROL_PLANE_BACKOFF_CAP_SECONDS": "0.1",
            "NODUS_AGENT_CONTROL_PLANE_BREAKER_FAILURES": "100",
            "NODUS_AGENT_CONTROL_PLANE_BREAKER_RESET_SECONDS": "0.2",
            "NODUS_AGENT_REPORTS_HEARTBEAT_SECONDS": "3600",
            "NODUS_AGENT_REPORTS_METRICS_SECONDS": "3600",
            "NODUS_AGENT_EXPIRY_CHECK_SECONDS": "3600",
            "NODUS_AGENT_HEALTH_LISTEN": "",
            "NODUS_AGENT_WIREGUARD_PRIVATE_KEY_FILE": str(tmp_path / "wg.key"),
            "NODUS_AGENT_POOLS_IPV4": "10.0.0.0/8",
            "NODUS_AGENT_POOLS_IPV6": "fd00::/8",
        }
        environ.update({f"NODUS_AGENT_{key}": value for key, value in overrides.items()})
        return load_config(None, environ)

    return make


@asynccontextmanager
async def running_agent(
    config: AgentConfig,
    account: LocalAccount,
    backend: FakeBackend,
    tracer: Tracer | None = None,
    **kwargs: Any,
) -> AsyncIterator[Agent]:
    """An Agent with `backend` as its WireGuard backend, running as a task; `tracer` goes to
    its client and to it."""
    async with ControlPlaneClient(
        config.control_plane, config.node_id, account, tracer=tracer
    ) as client:
        agent = Agent(
            config,
            client,
            {"wireguard": backend},
            StateStore(config.state_dir),
            tracer=tracer,
            **kwargs,
        )
        task = asyncio.create_task(agent.run())
        try:
            yield agent
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()
