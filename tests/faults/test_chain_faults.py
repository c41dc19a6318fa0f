"""The chain RPC frozen (SIGSTOP) and stopped under the real chain reader: once the breaker is
open, its half-open state lets exactly one trial reach the node while every other caller fails
fast with ChainUnavailable (a 503 with Retry-After), and the trial's success closes it."""

from __future__ import annotations

import asyncio
import signal

import pytest

from control_plane.chain.client import CircuitBreaker, Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.errors import ChainUnavailable
from tests.support.devchain import running_anvil
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
