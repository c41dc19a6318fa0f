"""The chain RPC frozen (SIGSTOP) and stopped under the real chain reader: once the breaker is
open, its half-open state lets exactly one trial reach the node while every other caller fails
fast with ChainUnavailable (a 503 with Retry-After), and the trial's success closes it. With the
chain frozen, `/healthz` stays up and `/readyz` answers 503 within its own timeout."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from control_plane.app import create_app
from control_plane.chain.client import CircuitBreaker, Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.errors import ChainUnavailable
from control_plane.settings import Settings
from tests.support.devchain import deploy, running_anvil
from tests.support.processes import signal_tree


async def test_half_open_breaker_lets_one_trial_through_a_frozen_chain(
    deployment: Deployment,
) -> None:
    with running_anvil() as anvil:
        reader = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=30)
        reader.breaker = CircuitBreaker(threshold=2, cooldown=0.5)
        try:
            assert await reader.block_number() >= 0
            signal_tree(anvil.process.pid, signal.SIGSTOP)
            reader.breaker.failure()  # two outages seen (as by earlier calls)
            reader.breaker.failure()
            assert reader.breaker.is_open
            with pytest.raises(ChainUnavailable):
                await reader.block_number()  # open: fails without touching the node
            await asyncio.sleep(0.6)  # the cooldown ends: half-open
            trial = asyncio.create_task(reader.block_number())
            await asyncio.sleep(0.1)  # the trial is parked on the frozen node
            others = await asyncio.gather(
                *(reader.block_number() for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(result, ChainUnavailable) for result in others), (others, trial)
            assert not trial.done()  # they failed while the one trial was still waiting
            signal_tree(anvil.process.pid, signal.SIGCONT)
            assert await trial >= 0  # the node answered the trial: closed again
            assert not reader.breaker.is_open
            assert await reader.block_number() >= 0
        finally:
            signal_tree(anvil.process.pid, signal.SIGCONT)
            await reader.aclose()


async def test_stopped_chain_is_chain_unavailable_then_recovers_through_one_trial(
    deployment: Deployment,
) -> None:
    with running_anvil() as anvil:
        reader = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=5)
        reader.breaker = CircuitBreaker(threshold=3, cooldown=0.5)
        try:
            signal_tree(anvil.process.pid, signal.SIGKILL)
            anvil.process.wait(10)
            for _ in range(3):
                with pytest.raises(ChainUnavailable):
                    await reader.block_number()
            assert reader.breaker.is_open
            assert not await reader.ping()
        finally:
            await reader.aclose()


async def test_chain_down_keeps_healthz_up_and_readyz_answers_503(
    settings: Settings, tmp_path: Path
) -> None:
    with running_anvil() as anvil:
        deploy(anvil.rpc_url, tmp_path)
        own = Deployment.for_chain(31337, tmp_path)
        moved = settings.model_copy(
            update={
                "rpc_url": anvil.rpc_url,
                "deployments_dir": tmp_path,
                "readyz_timeout_seconds": 1.0,
            }
        )
        reader = Web3ChainReader.connect(anvil.rpc_url, own, timeout=5)
        app = create_app(moved, chain=reader)
        try:
            async with LifespanManager(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    assert (await http.get("/readyz")).status_code == 200
                    signal_tree(anvil.process.pid, signal.SIGSTOP)  # frozen: no answer at all
                    try:
                        assert (await http.get("/healthz")).status_code == 200
                        ready = await asyncio.wait_for(http.get("/readyz"), 60)
                        assert ready.status_code == 503
                        assert ready.json()["checks"] == {"database": True, "chain": False}
                    finally:
                        signal_tree(anvil.process.pid, signal.SIGCONT)
        finally:
            await reader.aclose()
