"""R4: two replicas of the control plane (two `uvicorn` processes with their jobs and the same
oracle key) on one PostgreSQL and one anvil with the real contracts, for many short epochs.

The chain is the judge, not our database: each epoch is proposed once and accepted once
(RewardDistributor's RootProposed/RootAccepted events), epochs follow each other without a gap,
and every transaction the oracle sent was mined with its own nonce (the account's on-chain nonce
is the number of transactions the outbox mined). The schedule (`job_runs`) ran each job at most
once per interval across both replicas, where one schedule per replica would run it twice."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.outbox import OutboxTx
from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.jobs import JobRun, claim_slack
from control_plane.settings import Settings
from tests.control_plane.chain.support import ORACLE
from tests.control_plane.prober.health import health_server
from tests.e2e.stack import ControlPlane, free_tcp_port, until
from tests.support.builders import (
    NDS,
    agent_of,
    fresh_wallet,
    node_body,
    post_node,
    register_on_chain,
)
from tests.support.own_chain import own_chain, short_window

EPOCHS = 8  # accepted on-chain before the replicas are stopped
CHALLENGE_SECONDS = 5  # the shortest window a short governance round allows (TimingGuard)
# Both replicas: the oracle key, two-second epochs, every job each second. The prober's settings
# go through `Settings`, not this environment: ControlPlane writes NODUS_PROBER_* from its
# settings over the environment (a 60 s prober refusing 127.0.0.1 measured no epoch at all).
REPLICA_ENVIRONMENT = {
    "NODUS_ORACLE_PRIVATE_KEY": ORACLE.key.hex(),
    "NODUS_EPOCH_SECONDS": "2",
    "NODUS_REWARD_EPOCH_INTERVAL_SECONDS": "1",
    "NODUS_REWARD_ACCEPT_INTERVAL_SECONDS": "1",
    "NODUS_TX_SEND_INTERVAL_SECONDS": "1",
    "NODUS_TX_POLL_SECONDS": "0.1",
    "NODUS_PROBER_TIMEOUT_SECONDS": "1",
}
# Every job of a replica with the oracle key, each run every second (ControlPlane sets the
# chain-sync and expiry intervals to 1 s).
JOBS = {"chain_sync", "expiry", "probe_round", "oracle_sender", "reward_accept", "reward_epoch"}
JOB_INTERVAL_S = 1.0
DEADLINE_S = 300.0  # generous: the outcome is asserted, not the time it took


anvil, deployments_dir, deployment = own_chain("replicas", short_window(CHALLENGE_SECONDS))


async def epochs_of(distributor: Any, event: str) -> list[int]:
    logs = await getattr(distributor.events, event).get_logs(from_block=0)
    return [int(log["args"]["epoch"]) for log in logs]


async def test_two_replicas_propose_and_accept_each_epoch_once(
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in REPLICA_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    distributor = contract(w3, deployment, "RewardDistributor")
    oracle_nonce_before = await w3.eth.get_transaction_count(ORACLE.address)
    prober = settings.prober.model_copy(
        update={"interval_seconds": JOB_INTERVAL_S, "allow_private_targets": True}
    )
    settings = settings.model_copy(update={"prober": prober})
    replicas = []
    for index in range(2):
        logs = tmp_path / f"replica-{index}"  # each replica's own log file
        logs.mkdir()
        replicas.append(ControlPlane(settings, logs, free_tcp_port()))
    async with health_server() as health:
        # One node, probed by the replicas' prober: it earns every epoch's budget.
        operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
        node_id = await register_on_chain(w3, deployment, operator)
        health.serve_as(node_id, agent_of(node_id))
        body = node_body(node_id, protocols=("wireguard",), endpoint=health.endpoint)
        started = time.monotonic()
        try:
            for replica in replicas:
                await replica.start()
            async with httpx.AsyncClient(base_url=replicas[0].url, timeout=10) as client:

                async def registered() -> bool:
                    response = await post_node(client, settings, operator, body)
                    return response.status_code == 201

                # Until the chain-sync job has indexed the registration.
                await until(registered, 30, "the node's registration", step=0.5)

            async def accepted_enough() -> bool:
                epoch: int = await distributor.functions.currentEpoch().call()
                return epoch >= EPOCHS

            # Where to look when it times out: each replica logs why an epoch was not posted.
            waited_for = f"{EPOCHS} accepted epochs (replica logs in {tmp_path})"
            await until(accepted_enough, DEADLINE_S, waited_for, step=0.5)
        finally:
            for replica in replicas:
                await replica.stop()
        ran_for = time.monotonic() - started

    # On-chain: each epoch proposed once and accepted once, in order, none skipped.
    proposed = await epochs_of(distributor, "RootProposed")
    accepted = await epochs_of(distributor, "RootAccepted")
    assert accepted == list(range(1, len(accepted) + 1)), accepted
    assert len(accepted) >= EPOCHS
    # The replicas may have been stopped with the next root proposed, not yet accepted.
    assert proposed in (accepted, [*accepted, len(accepted) + 1]), proposed

    engine = make_engine(settings.database_url)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            outbox = (await session.scalars(select(OutboxTx))).all()
            runs = {row.name: row.runs for row in (await session.scalars(select(JobRun))).all()}
    finally:
        await engine.dispose()

    # No nonce clash: the outbox gave each transaction its own nonce, without a gap, none
    # failed, and the chain counts those (the last may have been in flight at the stop).
    assert [row.idempotency_key for row in outbox if row.status == "failed"] == []
    mined = [row for row in outbox if row.status == "mined"]
    nonces = sorted(row.nonce for row in outbox if row.nonce is not None)
    assert nonces == list(range(oracle_nonce_before, oracle_nonce_before + len(nonces)))
    sent_on_chain = await w3.eth.get_transaction_count(ORACLE.address) - oracle_nonce_before
    assert len(mined) <= sent_on_chain <= len(nonces)
    for row in mined:
        assert row.mined_tx_hash is not None
        receipt = await w3.eth.get_transaction_receipt(row.mined_tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 1, row.idempotency_key

    # Each job at most once per interval across both replicas (plus the first run at start);
    # a schedule per replica would have run each about twice as often.
    assert set(runs) == JOBS, runs
    # A claim may land up to claim_slack before the interval is over.
    most_runs = math.ceil(ran_for / (JOB_INTERVAL_S - claim_slack(JOB_INTERVAL_S))) + 1
    for name, count in runs.items():
        assert 1 <= count <= most_runs, (name, count, ran_for)
    print(
        f"R4: {len(accepted)} epochs accepted, {len(proposed)} proposed, {len(mined)} oracle "
        f"transactions, in {ran_for:.0f} s; job runs {runs}"
    )
