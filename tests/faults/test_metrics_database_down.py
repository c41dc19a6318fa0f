"""/metrics with the database stopped: it still answers 200 with what the process and the chain
know, says the database is out (`nodus_metrics_source_up{source="database"} 0`) and leaves the
database's values out rather than reporting stale or zero ones; it recovers with the database."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.control_plane.metrics.scrape import Scrape, scrape
from tests.faults.conftest import client_for
from tests.support.pgcluster import PostgresCluster

ANSWER_WITHIN = 60.0  # generous: the scrape must answer, not hang; no latency assertion


async def scrape_within(app: FastAPI) -> Scrape:
    async with client_for(app) as client:
        return await asyncio.wait_for(scrape(client), ANSWER_WITHIN)


async def test_metrics_answer_with_the_database_stopped_and_recover(
    cluster: PostgresCluster, cluster_app: FastAPI
) -> None:
    before = await scrape_within(cluster_app)
    assert before.value("nodus_metrics_source_up", source="database") == 1
    assert before.value("nodus_subscriptions_active") == 0

    cluster.stop()
    during = await scrape_within(cluster_app)

    assert during.value("nodus_metrics_source_up", source="database") == 0
    assert during.value("nodus_metrics_source_up", source="chain") == 1
    assert during.value("nodus_subscriptions_active") is None
    assert during.value("nodus_indexer_cursor_block") is None
    assert "nodus_subscriptions_active" in during.families  # listed, without a value
    assert during.value("nodus_indexer_head_block") is not None
    assert during.value("nodus_rpc_breaker_state") == 0
    assert during.value("nodus_longpolls_capacity") == cluster_app.state.feed.max_waiters
    assert (
        during.value("nodus_http_requests_total", method="GET", route="/metrics", status="200") == 1
    )

    cluster.start()
    for _ in range(100):  # the pool drops its dead connections and reconnects
        after = await scrape_within(cluster_app)
        if after.value("nodus_metrics_source_up", source="database") == 1:
            break
        await asyncio.sleep(0.2)
    assert after.value("nodus_subscriptions_active") == 0
