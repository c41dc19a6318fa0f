"""A span and a count per chain RPC call (method, contract function, outcome), and the breaker's
state as a gauge; spans for the indexer's runs, batches and reorg rewinds."""

from __future__ import annotations

import dataclasses

import pytest

from control_plane.chain.client import CircuitBreaker, Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.db import unit_of_work
from control_plane.errors import ChainUnavailable
from control_plane.indexer.sync import SyncReport, index_chain
from control_plane.instruments import Metrics
from control_plane.jobs import Services
from control_plane.tracing import tracer_of
from tests.control_plane.chain.support import services
from tests.control_plane.indexer.onchain import reorg
from tests.control_plane.metrics.traced import attributes, named, recording
from tests.support.builders import paying_subscriber
from tests.support.devchain import Anvil

__all__ = ["services"]

DEAD_RPC = "http://127.0.0.1:20999"  # in this branch's port range; nothing listens there


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_each_rpc_call_is_a_span_and_a_count_by_function_and_outcome(
    anvil: Anvil, deployment: Deployment
) -> None:
    provider, exported = recording()
    metrics = Metrics()
    reader = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    reader.observe(metrics, tracer_of(provider))
    try:
        await reader.block_number()
        await reader.node("0x" + "00" * 32)  # unregistered: an answer, two contract reads
    finally:
        await reader.aclose()

    (block,) = named(exported, "rpc eth_blockNumber")
    assert attributes(block) == {
        "rpc.system": "jsonrpc",
        "rpc.method": "eth_blockNumber",
        "nodus.rpc.outcome": "ok",
    }
    (get_node,) = named(exported, "rpc getNode")
    assert attributes(get_node)["rpc.method"] == "eth_call"
    assert attributes(get_node)["nodus.contract_function"] == "getNode"
    assert sample(metrics, "nodus_rpc_calls_total", method="getNode", outcome="ok") == 1
    assert sample(metrics, "nodus_rpc_calls_total", method="isActive", outcome="ok") == 1
    assert sample(metrics, "nodus_rpc_call_seconds_count", method="eth_blockNumber") == 1
    assert sample(metrics, "nodus_rpc_breaker_state") == 0


async def test_an_unreachable_node_opens_the_breaker_and_calls_say_so(
    deployment: Deployment,
) -> None:
    provider, exported = recording()
    metrics = Metrics()
    reader = Web3ChainReader.connect(DEAD_RPC, deployment, timeout=2)
    reader.breaker = CircuitBreaker(threshold=1, cooldown=60)
    reader.observe(metrics, tracer_of(provider))
    try:
        for _ in range(2):
            with pytest.raises(ChainUnavailable):
                await reader.block_number()
    finally:
        await reader.aclose()

    outcomes = [attributes(s)["nodus.rpc.outcome"] for s in named(exported, "rpc eth_blockNumber")]
    assert outcomes == ["unavailable", "breaker_open"]
    # The first call failed against the node (and opened the breaker); the second never left.
    for outcome in ("unavailable", "breaker_open"):
        assert (
            sample(metrics, "nodus_rpc_calls_total", method="eth_blockNumber", outcome=outcome) == 1
        )
    assert sample(metrics, "nodus_rpc_breaker_state") == 2


async def run_indexer(services: Services) -> SyncReport:
    async with unit_of_work(services.sessions) as session:
        return await index_chain(services, session)


async def test_indexer_runs_batches_and_rewinds_are_spans_and_reorgs_are_counted(
    services: Services, w3: Web3Client, deployment: Deployment
) -> None:
    provider, exported = recording()
    metrics = Metrics()
    traced = dataclasses.replace(services, tracer=tracer_of(provider), metrics=metrics)
    await paying_subscriber(w3, deployment)

    first = await run_indexer(traced)
    await reorg(w3, 1)
    second = await run_indexer(traced)

    runs = named(exported, "indexer sync")
    assert [attributes(r)["nodus.indexer.next_block"] for r in runs] == [
        first.next_block,
        second.next_block,
    ]
    assert attributes(runs[0])["nodus.indexer.events"] == first.events >= 1
    batches = named(exported, "indexer batch")
    assert batches[0].parent is not None
    assert batches[0].parent.span_id == runs[0].context.span_id
    assert sum(attributes(b)["nodus.indexer.events"] for b in batches) == first.events  # type: ignore[misc]
    (rewind,) = named(exported, "indexer rewind")
    assert second.fork_point is not None
    assert attributes(rewind)["nodus.indexer.fork_point"] == second.fork_point
    assert attributes(runs[1])["nodus.indexer.fork_point"] == second.fork_point
    assert sample(metrics, "nodus_indexer_reorgs_total") == 1
