"""The reward economy end to end, with nothing of ours faked: operators register nodes on-chain
and with the control plane, subscribers get real configs, nodes serve real health endpoints
(tests/control_plane/prober/health.py, signing as each node's agent) and report through the
agent API, the control plane's prober probes them, the epoch job scores and queues the root,
the oracle's sender posts and accepts it on anvil, and operators claim with
`nodus rewards claim` against the control plane served over HTTP (uvicorn, in the test's event
loop, so the CLI's thread reaches the same app)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import func, select

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.outbox import OutboxTx
from control_plane.db import unit_of_work
from control_plane.indexer.sync import sync_chain
from control_plane.jobs import Services, run_exclusive
from control_plane.prober.service import RoundReport, control_plane_prober, run_probe_round
from control_plane.rewards.formula.epoch import EpochResult
from control_plane.rewards.posting.epoch_job import score_and_propose
from control_plane.rewards.posting.publisher import accept_due_roots, send_oracle_transactions
from control_plane.rewards.posting.repository import PostingRepository
from control_plane.settings import Settings
from tests.cli.conftest import Cli
from tests.control_plane.prober.health import HealthServer, closed_port
from tests.support.builders import (
    NDS,
    agent_of,
    fresh_wallet,
    node_body,
    node_headers,
    paying_subscriber,
    post_node,
    register_on_chain,
    subscribe,
    wallet_headers,
    wg_keys,
)
from tests.support.devchain import Anvil, advance_time, dev_account

EPOCH_SECONDS = 3_600  # an hour-long epoch (NODUS_EPOCH_SECONDS)
ORACLE = dev_account(1)
NODE_STAKE = 1_000 * NDS


@pytest.fixture(autouse=True)
def reward_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a control plane with the oracle key reads from its environment: the key (anvil's
    dev account 1 holds ORACLE_ROLE), hour-long epochs, a prober allowed to probe loopback."""
    monkeypatch.setenv("NODUS_ORACLE_PRIVATE_KEY", ORACLE.key.hex())
    monkeypatch.setenv("NODUS_TX_POLL_SECONDS", "0.05")
    monkeypatch.setenv("NODUS_TX_WAIT_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("NODUS_EPOCH_SECONDS", str(EPOCH_SECONDS))
    monkeypatch.setenv("NODUS_PROBER_ALLOW_PRIVATE_TARGETS", "true")
    monkeypatch.setenv("NODUS_PROBER_TIMEOUT_SECONDS", "1")


@pytest.fixture
async def api_url(app: FastAPI) -> AsyncIterator[str]:
    """The test's app (lifespan already running) served over real HTTP."""
    port = closed_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 (waiting for uvicorn to bind)
            await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
def cli(anvil: Anvil, deployments_dir: Path, api_url: str) -> Cli:
    """`nodus ...` against the test's anvil and control plane (no key unless a test passes one)."""
    return Cli(
        {
            "NODUS_RPC_URL": anvil.rpc_url,
            "NODUS_DEPLOYMENTS_DIR": str(deployments_dir),
            "NODUS_PRIVATE_KEY": None,
            "NODUS_KEY_FILE": None,
            "NODUS_PASSPHRASE": None,
            "NODUS_API_URL": api_url,
        }
    )


@dataclass
class Network:
    """The actors of a reward epoch and the jobs of the control plane, as plain steps."""

    client: httpx.AsyncClient
    settings: Settings
    services: Services
    w3: Web3Client
    deployment: Deployment

    # Operators, nodes, subscribers

    async def operator(self) -> LocalAccount:
        """A fresh wallet with gas and 5,000 NDS (stake for several nodes)."""
        return await fresh_wallet(self.w3, self.deployment, 5_000 * NDS)

    async def node(
        self, operator: LocalAccount, health: HealthServer, stake: int = NODE_STAKE
    ) -> str:
        """Staked in NodeRegistry with the agent key `agent_of` derives from its id (the key its
        node tokens carry), registered here (POST /v1/nodes) with its endpoint on the health
        server, which signs its answers with that agent key (proof of service), and indexed by
        the chain-sync job. The default stake (1,000 NDS) caps a
        node's part at 10,000 NDS, the local epoch budget, so only tests about the cap meet it."""
        node_id = await register_on_chain(self.w3, self.deployment, operator, stake=stake)
        health.serve_as(node_id, agent_of(node_id))
        body = node_body(node_id, protocols=("wireguard",), endpoint=health.endpoint)
        response = await post_node(self.client, self.settings, operator, body)
        assert response.status_code == 201, response.text
        assert await run_exclusive(self.services, "chain_sync", sync_chain)
        return node_id

    async def device(self, node_id: str) -> str:
        """A paying subscriber's WireGuard config on the node (POST /v1/configs); its key."""
        subscriber = await paying_subscriber(self.w3, self.deployment)
        public_key = wg_keys().public
        response = await self.client.post(
            "/v1/configs",
            json={"node_id": node_id, "protocol": "wireguard", "public_key": public_key},
            headers=wallet_headers(self.settings, subscriber.address),
        )
        assert response.status_code == 201, response.text
        return public_key

    async def devices_of(self, node_id: str, wallet: LocalAccount, count: int) -> list[str]:
        """`wallet` pays for a month on-chain, then makes `count` WireGuard configs on the node
        with its own token (POST /v1/configs); their keys."""
        await subscribe(self.w3, self.deployment, wallet)
        keys = []
        for _ in range(count):
            public_key = wg_keys().public
            response = await self.client.post(
                "/v1/configs",
                json={"node_id": node_id, "protocol": "wireguard", "public_key": public_key},
                headers=wallet_headers(self.settings, wallet.address),
            )
            assert response.status_code == 201, response.text
            keys.append(public_key)
        return keys

    # What node agents report

    async def report(self, node_id: str, traffic: dict[str, int]) -> dict[str, int]:
        """POST /v1/agent/metrics: each peer's cumulative bytes (split evenly rx/tx), with a
        handshake half a minute ago."""
        handshake = (datetime.now(UTC) - timedelta(seconds=30)).replace(microsecond=0)
        peers = [
            {
                "public_key": key,
                "last_handshake_at": handshake.isoformat(),
                "rx_bytes": total // 2,
                "tx_bytes": total - total // 2,
            }
            for key, total in traffic.items()
        ]
        response = await self.client.post(
            "/v1/agent/metrics", json={"peers": peers}, headers=node_headers(self.settings, node_id)
        )
        assert response.status_code == 200, response.text
        answer: dict[str, int] = response.json()
        return answer

    async def heartbeat(self, node_id: str, **claims: Any) -> None:
        body = {
            "agent_version": "0.1.0",
            "applied_revision": 1,
            "active_peers": 1,
            "rx_bytes_total": 0,
            "tx_bytes_total": 0,
            **claims,
        }
        response = await self.client.post(
            "/v1/agent/heartbeat", json=body, headers=node_headers(self.settings, node_id)
        )
        assert response.status_code == 200, response.text

    # The control plane's jobs

    async def probe(self, at: datetime) -> RoundReport:
        """One round of the control plane's own prober (what the `probe_round` job runs),
        stamped `at` so the test places it in an epoch."""
        prober_settings = self.settings.prober
        account = control_plane_prober(self.settings, prober_settings)
        async with unit_of_work(self.services.sessions) as session:
            return await run_probe_round(
                session,
                self.settings.chain_id,
                account,
                prober_settings,
                now=int(at.timestamp()),
            )

    async def epoch_job(self, now: datetime) -> EpochResult | None:
        async with unit_of_work(self.services.sessions) as session:
            return await score_and_propose(self.services, session, now=now)

    async def oracle_sender(self) -> None:
        """Runs the oracle sender job until its outbox has nothing in flight."""
        for _ in range(50):
            assert await run_exclusive(self.services, "oracle_sender", send_oracle_transactions)
            if not await self.in_flight():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the oracle's transactions were never mined")

    async def in_flight(self) -> int:
        async with unit_of_work(self.services.sessions) as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxTx)
                .where(OutboxTx.status.not_in(["mined", "failed"]))
            )
        return int(count or 0)

    async def outbox(self) -> dict[str, str]:
        """Every outbox row: key -> status."""
        async with unit_of_work(self.services.sessions) as session:
            rows = await session.execute(select(OutboxTx.idempotency_key, OutboxTx.status))
            return {key: status for key, status in rows}

    async def accept(self, epoch: int) -> None:
        """Waits out the challenge window on-chain, then the accept job queues acceptRoot, the
        sender mines it, and the next accept run records the epoch as accepted."""
        challenge: int = await self.distributor.functions.challengePeriod().call()
        await advance_time(self.w3, challenge + 1)
        async with unit_of_work(self.services.sessions) as session:
            report = await accept_due_roots(self.services, session)
        assert report.accept_queued == epoch
        await self.oracle_sender()
        async with unit_of_work(self.services.sessions) as session:
            settled = await accept_due_roots(self.services, session)
        assert settled.accepted == [epoch]

    async def post(self, now: datetime) -> EpochResult:
        """The epoch job, the sender broadcasting proposeRoot, then acceptance."""
        result = await self.epoch_job(now)
        assert result is not None
        await self.oracle_sender()
        pending = await self.distributor.functions.pendingRoot().call()
        assert ("0x" + pending[0].hex(), pending[3]) == (result.root, result.epoch)
        await self.accept(result.epoch)
        assert await self.distributor.functions.currentEpoch().call() == result.epoch
        assert "0x" + (await self.distributor.functions.currentRoot().call()).hex() == result.root
        return result

    async def next_epoch_end(self) -> datetime:
        """The earliest `now` at which the job takes the next epoch: one epoch after the last
        one was posted here."""
        epoch: int = await self.distributor.functions.currentEpoch().call()
        async with unit_of_work(self.services.sessions) as session:
            last = await PostingRepository(session).publication(self.settings.chain_id, epoch)
        assert last is not None
        return last.created_at + timedelta(seconds=EPOCH_SECONDS)

    # Reading

    @property
    def distributor(self) -> Any:
        return contract(self.w3, self.deployment, "RewardDistributor")

    async def balance(self, account: LocalAccount) -> int:
        token = contract(self.w3, self.deployment, "NDSToken")
        balance: int = await token.functions.balanceOf(account.address).call()
        return balance

    async def allocations(self, epoch: int) -> dict[str, int]:
        """GET /v1/epochs/{n}: each operator's part of the epoch (lower-case address -> wei)."""
        response = await self.client.get(f"/v1/epochs/{epoch}")
        assert response.status_code == 200, response.text
        return {a["operator"]: int(a["amount"]) for a in response.json()["allocations"]}

    async def scores(self, node_id: str) -> list[dict[str, Any]]:
        """GET /v1/nodes/{id}/scores, newest epoch first."""
        response = await self.client.get(f"/v1/nodes/{node_id}/scores")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture
def network(
    client: httpx.AsyncClient,
    settings: Settings,
    app: FastAPI,
    w3: Web3Client,
    deployment: Deployment,
) -> Network:
    services: Services = app.state.services
    return Network(client, settings, services, w3, deployment)
