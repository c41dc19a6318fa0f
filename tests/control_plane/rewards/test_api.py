"""GET /v1/nodes/{id}/scores and GET /v1/epochs/{n}: public, read from what scoring recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.indexer.models import RewardEpoch
from control_plane.rewards import repository
from control_plane.rewards.posting.gather import build_epoch
from tests.control_plane.rewards.support import (
    NDS,
    Prober,
    add_node,
    fund_pool,
    new_address,
    transaction,
)

HOUR = timedelta(hours=1)


async def record_epochs(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    count: int,
    answered: list[int],
) -> tuple[str, str]:
    """`count` hourly epochs, ending an hour ago, of one node answering `answered[i]` of 60
    rounds; each recorded. Returns the node id and its operator."""
    prober = Prober()
    operator = new_address()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    async with transaction(sessions) as session:
        await prober.allow(session)
        node = await add_node(session, operator=operator)
    for epoch in range(1, count + 1):
        start = now - (count + 1 - epoch) * HOUR
        async with transaction(sessions) as session:
            await prober.rounds(session, node, start, 60, answered=answered[epoch - 1])
        async with transaction(sessions) as session:
            previous = await repository.cumulative_of(session, chain.chain_id, epoch - 1)
            result = await build_epoch(
                session, chain, epoch, start, start + HOUR, 10 * NDS, previous
            )
            await repository.save_epoch_scores(session, result)
    return node, operator


async def test_a_nodes_scores_newest_first_with_reasons_and_pages(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    await fund_pool(chain, 1_000 * NDS)
    node, _ = await record_epochs(sessions, chain, 3, [60, 45, 60])

    first = await api.get(f"/v1/nodes/{node}/scores", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["epoch"] for item in page["items"]] == [3, 2]
    assert page["next_cursor"] == "2"
    middle = page["items"][1]
    assert "uptime 0.75: answered 45 of the epoch's 60 probe rounds" in middle["reasons"]
    assert middle["breakdown"]["uptime"]["value_ppm"] == 750_000
    assert 0 <= middle["score"] <= 1
    assert middle["formula_version"] == "nodus-score/2"
    assert middle["active"] is True
    # Smoothing: epoch 2's bad hour moved the score less than it moved the raw score.
    first_epoch_score = (await api.get(f"/v1/nodes/{node}/scores")).json()["items"][2]
    assert middle["raw_score"] < middle["score"] < first_epoch_score["score"]

    rest = await api.get(
        f"/v1/nodes/{node.upper().replace('0X', '0x')}/scores",
        params={"limit": 2, "cursor": page["next_cursor"]},
    )
    assert [item["epoch"] for item in rest.json()["items"]] == [1]
    assert rest.json()["next_cursor"] is None


async def test_scores_of_unknown_nodes_and_bad_input(api: httpx.AsyncClient) -> None:
    missing = await api.get(f"/v1/nodes/0x{'ab' * 32}/scores")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await api.get("/v1/nodes/0x1234/scores")).status_code == 422
    bad_cursor = await api.get(f"/v1/nodes/0x{'ab' * 32}/scores", params={"cursor": "x"})
    assert bad_cursor.status_code == 422
    too_many = await api.get(f"/v1/nodes/0x{'ab' * 32}/scores", params={"limit": 10_000})
    assert too_many.status_code == 422


async def test_an_epochs_summary_follows_the_chain(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    await fund_pool(chain, 1_000 * NDS)
    _, operator = await record_epochs(sessions, chain, 1, [60])

    scored = await api.get("/v1/epochs/1")
    assert scored.status_code == 200, scored.text
    body = scored.json()
    assert body["status"] == "scored"
    assert body["chain"] is None
    assert body["budget"] == str(10 * NDS)
    assert body["allocated"] == str(10 * NDS)
    assert body["allocations"] == [
        {"operator": operator, "amount": str(10 * NDS), "cumulative": str(10 * NDS)}
    ]
    assert body["nodes_scored"] == 1
    assert body["root"].startswith("0x")
    assert len(body["root"]) == 66

    async with transaction(sessions) as session:
        await session.execute(
            insert(RewardEpoch).values(
                chain_id=31337,
                epoch=1,
                root=body["root"],
                total_cumulative=10 * NDS,
                data_hash=body["data_hash"],
                valid_at=datetime.now(UTC),
                status="accepted",
                proposed_tx_hash="0x" + "12" * 32,
                proposed_log_index=0,
                proposed_block=7,
            )
        )
    accepted = (await api.get("/v1/epochs/1")).json()
    assert accepted["status"] == "accepted"
    assert accepted["chain"]["root"] == body["root"]
    assert accepted["chain"]["proposed_tx_hash"] == "0x" + "12" * 32

    assert (await api.get("/v1/epochs/2")).status_code == 404
    assert (await api.get("/v1/epochs/0")).status_code == 422
