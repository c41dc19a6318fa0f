"""A root is accepted after its challenge window on an idle chain (anvil automining, nothing else
sent): the accept job judges the window by the wall clock too, and its own acceptRoot mines the
block that moves the chain's clock. Its own anvil, deployed with a 5-second window, so the test
waits out a real window instead of moving the clock (which is the condition under test)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.sender import TransactionSender
from control_plane.db import unit_of_work
from control_plane.jobs import Services
from control_plane.rewards.posting.publisher import accept_due_roots, post_epoch
from control_plane.settings import Settings
from tests.control_plane.chain.support import ORACLE
from tests.control_plane.rewards_posting.support import published
from tests.e2e.stack import ControlPlane, free_tcp_port
from tests.support.devchain import dev_account
from tests.support.own_chain import own_chain, short_window

CHALLENGE_SECONDS = 5
POLL_DEADLINE_S = 60.0  # generous: the outcome is asserted, not the time it took

anvil, deployments_dir, deployment = own_chain("short-window", short_window(CHALLENGE_SECONDS))


async def test_a_root_is_accepted_after_its_window_with_no_other_transaction(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    assert await distributor.functions.challengePeriod().call() == CHALLENGE_SECONDS
    cumulative: dict[str, int] = {dev_account(2).address: 10**18}
    posting = await post_epoch(services, 1, cumulative, published(1, cumulative), sender=sender)
    assert posting.status == "proposed"
    proposed_at = await w3.eth.block_number

    # Only the accept job and the oracle's sender run; nobody else sends anything.
    started = time.monotonic()
    while await distributor.functions.currentEpoch().call() != 1:
        assert time.monotonic() - started < POLL_DEADLINE_S, "the root was never accepted"
        async with unit_of_work(services.sessions) as session:
            await accept_due_roots(services, session, sender=sender)
        await sender.process()
        await asyncio.sleep(0.5)
    print(f"accepted {time.monotonic() - started:.1f} s after the proposal was mined")

    assert await distributor.functions.rootEpoch().call() == 1
    # The only block after the proposal is the acceptRoot's own.
    assert await w3.eth.block_number == proposed_at + 1


async def test_the_running_control_plane_accepts_a_root_on_an_idle_chain_by_itself(
    services: Services,
    sender: TransactionSender,
    w3: Web3Client,
    deployment: Deployment,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dev stack's shape: the control plane in its own process with the oracle key and its
    jobs; the root is proposed, then nothing but the control plane touches the chain."""
    monkeypatch.setenv("NODUS_ORACLE_PRIVATE_KEY", ORACLE.key.hex())
    monkeypatch.setenv("NODUS_REWARD_ACCEPT_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("NODUS_TX_SEND_INTERVAL_SECONDS", "1")
    cumulative: dict[str, int] = {dev_account(3).address: 10**18}
    posting = await post_epoch(services, 1, cumulative, published(1, cumulative), sender=sender)
    assert posting.status == "proposed"
    distributor = contract(w3, deployment, "RewardDistributor")
    control_plane = ControlPlane(settings, tmp_path, free_tcp_port())
    await control_plane.start()
    try:
        started = time.monotonic()
        while await distributor.functions.currentEpoch().call() != 1:
            assert time.monotonic() - started < POLL_DEADLINE_S, "the root was never accepted"
            await asyncio.sleep(0.5)
        print(f"accepted {time.monotonic() - started:.1f} s after the control plane started")
    finally:
        await control_plane.stop()
    assert await distributor.functions.rootEpoch().call() == 1
