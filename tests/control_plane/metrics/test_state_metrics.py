"""/metrics reports domain state as the database and the chain hold it: a node, a paid
subscriber with an issued config, the agent's report, a probe round and a scored epoch, each
seen the way a dashboard reads it."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import unit_of_work
from control_plane.indexer.sync import index_chain
from control_plane.settings import Settings
from tests.control_plane.metrics.scrape import documented_control_plane_names, scrape
from tests.support.builders import (
    NDS,
    fresh_wallet,
    node_body,
    node_headers,
    paying_subscriber,
    post_node,
    register_on_chain,
    sql,
    wallet_headers,
    wg_keys,
)

PROBER = "0x" + "ab" * 20


async def seed_probe_round(settings: Settings, node_id: str) -> None:
    await sql(settings, "INSERT INTO probers (address, name) VALUES (:a, 'p1')", a=PROBER)
    await sql(
        settings,
        "INSERT INTO probe_samples (prober, node_id, round_at, attempts, rtt_us, error, signature)"
        " VALUES (:p, :n, now(), 3, '{1500,2500}', NULL, '0x')",
        p=PROBER,
        n=node_id,
    )


async def seed_scored_epoch(settings: Settings, node_id: str, operator: str) -> None:
    """Epoch 1 scored: the node 0.8 (uptime 0.9), its operator allocated 5 NDS."""
    await sql(
        settings,
        "INSERT INTO scored_epochs (chain_id, epoch, starts_at, ends_at, formula_version,"
        " requested_budget, budget, allocated, total_cumulative, root, data_hash, data)"
        " VALUES (31337, 1, now() - interval '1 hour', now(), 'nodus-score/1', :b, :b, :b, :b,"
        " :h, :h, '\\x00')",
        b=5 * NDS,
        h="0x" + "00" * 32,
    )
    breakdown = {"uptime": {"value_ppm": 900_000, "weight": 50, "contribution_ppm": 450_000}}
    await sql(
        settings,
        "INSERT INTO node_scores (chain_id, epoch, node_id, operator, active, raw_ppm,"
        " smoothed_ppm, score_ppm, breakdown, reasons)"
        " VALUES (31337, 1, :n, :o, true, 800000, 800000, 800000, CAST(:b AS jsonb), '{}')",
        n=node_id,
        o=operator,
        b=json.dumps(breakdown),
    )
    await sql(
        settings,
        "INSERT INTO operator_allocations (chain_id, epoch, operator, amount, cumulative)"
        " VALUES (31337, 1, :o, :a, :a)",
        o=operator,
        a=5 * NDS,
    )


async def test_a_scrape_reports_what_the_database_and_chain_hold(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    node_id = await register_on_chain(w3, deployment, operator)
    body = node_body(node_id, endpoint="127.0.0.1:51820")
    created = await post_node(client, settings, operator, body)
    assert created.status_code == 201, created.text
    subscriber = await paying_subscriber(w3, deployment)
    issued = await client.post(
        "/v1/configs",
        json={"node_id": node_id, "protocol": "wireguard", "public_key": wg_keys().public},
        headers=wallet_headers(settings, subscriber.address),
    )
    assert issued.status_code == 201, issued.text
    services = app.state.services
    async with unit_of_work(services.sessions) as session:
        report = await index_chain(services, session)
    ((desired,),) = await sql(settings, "SELECT revision FROM nodes WHERE id = :id", id=node_id)
    heartbeat = {
        "agent_version": "0.1.0",
        "applied_revision": desired - 1,
        "active_peers": 0,
        "rx_bytes_total": 0,
        "tx_bytes_total": 0,
    }
    answered = await client.post(
        "/v1/agent/heartbeat", json=heartbeat, headers=node_headers(settings, node_id)
    )
    assert answered.status_code == 200, answered.text
    await seed_probe_round(settings, node_id)
    await seed_scored_epoch(settings, node_id, operator.address.lower())
    price = await contract(w3, deployment, "SubscriptionManager").functions.pricePerPeriod().call()

    metrics = await scrape(client)

    assert metrics.value("nodus_metrics_source_up", source="database") == 1
    assert metrics.value("nodus_metrics_source_up", source="chain") == 1
    assert metrics.value("nodus_subscriptions_active") == 1
    assert metrics.value("nodus_payments", state="active") == 1
    assert metrics.value("nodus_payments", state="expired") == 0
    assert metrics.value("nodus_revenue_wei", recipient="total") == price
    assert metrics.value("nodus_nodes", status="active") == 1
    assert metrics.value("nodus_nodes_online") == 1
    assert metrics.value("nodus_configs", status="active") == 1
    assert metrics.value("nodus_configs", status="revoked") == 0
    assert metrics.value("nodus_node_peers", node=node_id) == 1
    assert metrics.value("nodus_node_revision_desired", node=node_id) == desired
    assert metrics.value("nodus_node_revision_reported", node=node_id) == desired - 1
    assert metrics.value("nodus_node_health", node=node_id, verdict="up", reason="ok") == 1
    assert metrics.value("nodus_probe_rounds", verdict="up", reason="ok") == 1
    assert metrics.value("nodus_node_score", node=node_id) == 0.8
    assert metrics.value("nodus_node_score_part", node=node_id, part="uptime") == 0.9
    assert metrics.value("nodus_node_reward_wei", node=node_id) == 5 * NDS
    # The indexer mirrored up to the head it saw; the chain has not moved since.
    head = await w3.eth.block_number
    assert metrics.value("nodus_indexer_cursor_block") == report.next_block - 1 == head
    assert metrics.value("nodus_indexer_head_block") == head
    assert metrics.value("nodus_indexer_lag_blocks") == 0
    assert metrics.value("nodus_indexer_lag_seconds") == 0
    assert metrics.value("nodus_indexer_reorgs_total") == 0
    assert metrics.value("nodus_oracle_outbox_oldest_pending_seconds") == 0
    assert metrics.value("nodus_epoch_length_seconds") == settings.reward_posting.epoch_seconds
    assert metrics.value("nodus_rewards_pending_root_verified") == 0  # no root pending
    # The chain calls behind all this, by contract function and outcome.
    assert (metrics.value("nodus_rpc_calls_total", method="getNode", outcome="ok") or 0) >= 1
    assert metrics.value("nodus_rpc_breaker_state") == 0
    assert metrics.value("nodus_longpolls_parked") == 0
    assert metrics.value("nodus_longpolls_capacity") == app.state.feed.max_waiters
    assert (metrics.value("nodus_db_pool_connections", state="idle") or 0) >= 1


async def test_every_documented_control_plane_name_is_on_metrics(
    client: httpx.AsyncClient,
) -> None:
    names = documented_control_plane_names()
    assert len(names) > 30  # the table was found

    metrics = await scrape(client)

    assert [name for name in names if name not in metrics.families] == []
