"""Issue 9, findings 2b and 2c, played by the attacker against the real epoch build (signed probe
samples, configs and agents' reports in PostgreSQL, the pool's funding on anvil):

- 2c: a node that shows up 30 s before the epoch ends earns its share of the epoch's uptime, not
  all of it; and however high its score, a node takes at most `stake_cap_multiple` times its
  stake, the rest staying in the pool;
- 2b: an operator paying for its own node (or its agent's wallet), with five devices, earns
  nothing for that traffic; one paying wallet counts once however many devices it has.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.rewards import repository
from control_plane.rewards.formula.epoch import EpochResult
from control_plane.rewards.formula.merkle import RewardTree
from control_plane.rewards.formula.scoring import PARAMS, PPM
from control_plane.rewards.posting.gather import build_epoch
from tests.control_plane.rewards.support import (
    NDS,
    Prober,
    add_config,
    add_node,
    agent_of,
    fund_pool,
    new_address,
    report_peer,
    transaction,
)

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def last_hour() -> tuple[datetime, datetime]:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - HOUR
    return end - HOUR, end


def scores_of(result: EpochResult) -> dict[str, int]:
    return {s.node_id: s.score_ppm for s in result.scores}


async def test_a_node_that_appears_30_seconds_before_the_end_gets_a_sixtieth_of_the_uptime(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    start, end = last_hour()
    prober = Prober()
    steady_operator, late_operator = new_address(), new_address()
    async with transaction(sessions) as session:
        await prober.allow(session)
        steady = await add_node(session, operator=steady_operator)
        late = await add_node(session, operator=late_operator, created_at=end - 31 * MINUTE / 60)
        await prober.rounds(session, steady, start, 60)
        # The late node is a target only in the epoch's last round, and answers it.
        await prober.rounds(session, late, start + 59 * MINUTE, 1)
    await fund_pool(chain, 100 * NDS)

    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 100 * NDS, {})

    scores = {s.node_id: s for s in result.scores}
    assert scores[late].uptime.value_ppm == PPM // 60
    assert scores[late].uptime.reason == (
        "uptime 0.02: answered 1 of the epoch's 60 probe rounds, probed in 1"
    )
    assert scores[late].latency.value_ppm == PPM // 60  # a fast answer, for 1/60 of the epoch
    assert scores[steady].uptime.value_ppm == PPM
    assert scores[late].score_ppm * 50 < scores[steady].score_ppm
    assert result.allocations[late_operator] * 50 < result.allocations[steady_operator]
    assert sum(result.allocations.values()) == 100 * NDS  # no cap reached: all is paid
    (published,) = [n for n in json.loads(result.data)["nodes"] if n["node_id"] == late]
    assert published["metrics"]["probers"][0]["epoch_rounds"] == 60


async def test_a_lone_node_takes_at_most_ten_times_its_stake_and_the_rest_stays_in_the_pool(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """The finding's numbers: the only node of the epoch, 100 NDS staked, a 10,000 NDS budget.
    It used to take all of it; now 1,000 NDS (10 x its stake), and 9,000 NDS stay unallocated,
    exactly, with the leaves, their total and the root consistent."""
    start, end = last_hour()
    prober = Prober()
    operator = new_address()
    async with transaction(sessions) as session:
        await prober.allow(session)
        lone = await add_node(session, operator=operator, stake=100 * NDS)
        await prober.rounds(session, lone, start, 60)
    await fund_pool(chain, 10_000 * NDS)
    previous = {new_address(): 7}  # an earlier leaf: 7 wei, carried as it is

    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 10_000 * NDS, previous)

    assert PARAMS.stake_cap_multiple == 10
    assert scores_of(result)[lone] > 0
    assert result.budget == 10_000 * NDS
    assert result.node_allocations == {lone: 1_000 * NDS}
    assert result.allocations == {operator: 1_000 * NDS}
    assert result.cumulative[operator] == 1_000 * NDS
    assert result.total_cumulative == sum(result.cumulative.values()) == 1_000 * NDS + 7
    assert result.root == "0x" + RewardTree.build(result.cumulative.items()).root.hex()

    data = json.loads(result.data)
    assert data["formula"]["params"]["stake_cap_multiple"] == 10
    assert data["budget"]["effective"] == str(10_000 * NDS)
    assert data["budget"]["allocated"] == str(1_000 * NDS)
    (node,) = data["nodes"]
    assert node["stake"] == str(100 * NDS)
    assert node["allocation"] == {"cap": str(1_000 * NDS), "amount": str(1_000 * NDS)}
    assert int(data["total_cumulative"]) == sum(
        int(leaf["cumulative_amount"]) for leaf in data["leaves"]
    )
    # What stays in the pool is still there for the next epoch.
    assert result.total_funded - result.total_cumulative >= 9_000 * NDS

    # The epoch's summary says so to anyone.
    async with transaction(sessions) as session:
        await repository.save_epoch_scores(session, result)
    summary = (await api.get("/v1/epochs/1")).json()
    assert (summary["budget"], summary["allocated"]) == (str(10_000 * NDS), str(1_000 * NDS))
    assert summary["formula_version"] == "nodus-score/2"


async def test_an_operator_paying_for_its_own_node_with_five_devices_earns_nothing_for_it(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """Two nodes measured alike by the prober. The self-dealer's operator subscribes its own
    wallet (10 NDS) with five devices on its node, and its agent key one more, and reports full
    traffic and fresh handshakes for all six: its handshake and traffic stay at 0, as an idle
    node's. A real subscriber with five devices on the other node counts as one wallet."""
    start, end = last_hour()
    prober = Prober()
    self_dealer, honest_operator = new_address(), new_address()
    heavy = PARAMS.traffic_full_bps * 3_600  # full marks for a node, reported per device
    async with transaction(sessions) as session:
        await prober.allow(session)
        dealer_node = await add_node(session, operator=self_dealer)
        honest_node = await add_node(session, operator=honest_operator)
        agent = await agent_of(session, dealer_node)
        real_wallet = new_address()
        for node, wallets in (
            (dealer_node, [self_dealer] * 5 + [agent]),
            (honest_node, [real_wallet] * 5),
        ):
            await prober.rounds(session, node, start, 60)
            for wallet in wallets:
                key = await add_config(session, node, subscriber=wallet)
                await report_peer(session, node, key, at=start + MINUTE, rx=0, tx=0)
                await report_peer(session, node, key, at=end - MINUTE, rx=heavy, tx=heavy)
    await fund_pool(chain, 100 * NDS)

    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 100 * NDS, {})

    scores = {s.node_id: s for s in result.scores}
    dealer, honest = scores[dealer_node], scores[honest_node]
    assert dealer.handshake.value_ppm == 0
    assert dealer.traffic.value_ppm == 0
    assert dealer.raw_ppm == (PARAMS.weights.uptime + PARAMS.weights.latency) * PPM // 100
    assert (
        "ignored the traffic of 2 wallets that are this node's own operator or agent"
        in dealer.reasons
    )
    # The honest node's five devices are one paying wallet, capped at one wallet's rate.
    metrics = {m.node_id: m for m in result.metrics}
    assert metrics[honest_node].peers_with_traffic == 1
    assert metrics[honest_node].served_bytes == PARAMS.traffic_peer_cap_bps * 3_600
    assert metrics[dealer_node].own_wallets == 2
    assert honest.handshake.value_ppm == PPM
    assert 0 < honest.traffic.value_ppm < PPM
    assert result.allocations[honest_operator] > result.allocations[self_dealer]
    (published,) = [n for n in json.loads(result.data)["nodes"] if n["node_id"] == dealer_node]
    assert published["metrics"]["own_wallets"] == 2
    assert published["metrics"]["peers_with_traffic"] == 0
    assert published["agent"] == agent
