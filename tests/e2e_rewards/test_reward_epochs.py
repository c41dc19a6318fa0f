"""Reward epochs end to end (issue 5, "Tests"): nodes measured by real probe rounds and real agent
reports -> the epoch job scores and queues the root -> the oracle's sender proposes it on-chain
-> after the challenge window it is accepted -> operators claim with `nodus rewards claim` and
receive exactly their allocation, to the wei. See conftest.py for the pieces."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

from tests.cli.conftest import Cli
from tests.control_plane.chain.support import NDS
from tests.control_plane.prober.health import health_server
from tests.e2e_rewards.conftest import EPOCH_SECONDS, Network
from tests.support.builders import fresh_wallet, wg_keys

BUDGET = 10_000 * NDS  # the local deployment's epoch budget (the pool holds far more)


async def test_operators_claim_exactly_their_allocations_through_the_cli(
    network: Network, cli: Cli
) -> None:
    started = datetime.now(UTC)
    alice, bob = await network.operator(), await network.operator()
    async with (
        health_server() as a1_health,
        health_server(delay=0.1) as a2_health,  # up, but 100 ms away
        health_server() as b1_health,
    ):
        a1 = await network.node(alice, a1_health)
        a2 = await network.node(alice, a2_health)
        b1 = await network.node(bob, b1_health)
        a1_peer, b1_peer = await network.device(a1), await network.device(b1)

        # Epoch 1: three probe rounds over the last half hour; the agents report their peers.
        for minutes_ago in (30, 20, 10):
            round_ = await network.probe(started - timedelta(minutes=minutes_ago))
            assert (round_.probed, round_.answered) == (3, 3)
        for node in (a1, a2, b1):
            await network.heartbeat(node)
        assert await network.report(a1, {a1_peer: 10**9}) == {"accepted": 1, "ignored": 0}
        await network.report(a1, {a1_peer: 3 * 10**9})
        await network.report(b1, {b1_peer: 2 * 10**9})

        first = await network.post(now=datetime.now(UTC))

        assert first.epoch == 1
        assert first.probe_rounds == 3
        paid_1 = await network.allocations(1)
        a, b = alice.address.lower(), bob.address.lower()
        assert set(paid_1) == {a, b}
        assert paid_1[a] + paid_1[b] == first.budget == BUDGET
        assert paid_1[a] > paid_1[b]  # two nodes against one
        assert first.allocations == paid_1

        # Alice claims through the CLI; Bob only looks.
        shown = await cli("rewards", "show", "--address", bob.address)
        assert shown.exit_code == 0, shown.output
        before = await network.balance(alice)
        claimed = await cli("rewards", "claim", key=alice)
        assert claimed.exit_code == 0, claimed.output
        assert await network.balance(alice) - before == paid_1[a]
        verified = await cli("rewards", "verify", "1")
        assert verified.exit_code == 0, verified.output
        assert "epoch 1: verified" in verified.stdout

        # Epoch 2: the window starts when epoch 1 was posted; more rounds, more traffic.
        end = await network.next_epoch_end()
        for minutes in (10, 20, 30):
            round_ = await network.probe(end - timedelta(seconds=EPOCH_SECONDS, minutes=-minutes))
            assert round_.answered == 3
        await network.report(a1, {a1_peer: 5 * 10**9})
        await network.report(b1, {b1_peer: 6 * 10**9})

        second = await network.post(now=end)

    assert second.epoch == 2
    paid_2 = await network.allocations(2)
    assert paid_2[a] + paid_2[b] == BUDGET
    assert second.cumulative == {a: paid_1[a] + paid_2[a], b: paid_1[b] + paid_2[b]}
    rewards = (await network.client.get(f"/v1/rewards/{bob.address}")).json()
    assert (rewards["epoch"], int(rewards["claimable"])) == (2, paid_1[b] + paid_2[b])

    # Alice gets epoch 2's part; Bob's one claim pays both epochs.
    before_a, before_b = await network.balance(alice), await network.balance(bob)
    for operator in (alice, bob):
        result = await cli("rewards", "claim", key=operator)
        assert result.exit_code == 0, result.output
    assert await network.balance(alice) - before_a == paid_2[a]
    assert await network.balance(bob) - before_b == paid_1[b] + paid_2[b]
    again = await cli("rewards", "claim", key=bob)
    assert again.exit_code == 0, again.output
    assert "nothing to claim" in again.stdout
    assert await network.balance(bob) - before_b == paid_1[b] + paid_2[b]

    verified = await cli("rewards", "verify", "2")
    assert verified.exit_code == 0, verified.output
    assert "epoch 2: verified" in verified.stdout


async def test_a_node_that_stops_answering_probes_loses_uptime_and_earnings(
    network: Network,
) -> None:
    started = datetime.now(UTC)
    alice, bob = await network.operator(), await network.operator()
    async with health_server() as steady_health, AsyncExitStack() as flaky_server:
        flaky_health = await flaky_server.enter_async_context(health_server())
        steady = await network.node(alice, steady_health)
        flaky = await network.node(bob, flaky_health)

        # Epoch 1: both answer all four rounds: equal scores, equal parts.
        for minutes_ago in (40, 30, 20, 10):
            await network.probe(started - timedelta(minutes=minutes_ago))
        await network.post(now=datetime.now(UTC))
        a, b = alice.address.lower(), bob.address.lower()
        assert await network.allocations(1) == {a: BUDGET // 2, b: BUDGET // 2}

        # Epoch 2: the flaky node answers the first round, then its endpoint goes away.
        end = await network.next_epoch_end()
        start = end - timedelta(seconds=EPOCH_SECONDS)
        assert (await network.probe(start + timedelta(minutes=10))).answered == 2
        await flaky_server.aclose()
        for minutes in (20, 30, 40):
            assert (await network.probe(start + timedelta(minutes=minutes))).answered == 1
        await network.post(now=end)

    latest, previous = await network.scores(flaky)
    assert (latest["epoch"], previous["epoch"]) == (2, 1)
    assert previous["breakdown"]["uptime"]["value_ppm"] == 1_000_000
    assert latest["breakdown"]["uptime"]["value_ppm"] == 250_000
    assert "uptime 0.25: answered 1 of the epoch's 4 probe rounds" in latest["reasons"]
    # This epoch alone: 50% x 0.25 + 15% x 1.00 (latency of the round it answered); smoothed
    # with 70% of the previous 0.65, so one bad epoch is not a cliff.
    assert latest["breakdown"]["raw_ppm"] == 275_000
    assert latest["breakdown"]["score_ppm"] == 537_500
    (steady_latest, _) = await network.scores(steady)
    assert steady_latest["breakdown"]["score_ppm"] == 650_000

    # 10,000 NDS split 650,000 : 537,500 by the largest remainder.
    assert await network.allocations(2) == {
        a: 5_473_684_210_526_315_789_474,
        b: 4_526_315_789_473_684_210_526,
    }


async def test_a_node_lying_in_its_reports_gains_nothing(network: Network) -> None:
    started = datetime.now(UTC)
    alice, bob = await network.operator(), await network.operator()
    async with health_server() as honest_health, health_server() as liar_health:
        honest = await network.node(alice, honest_health)
        liar = await network.node(bob, liar_health)
        peer = await network.device(honest)
        for minutes_ago in (30, 20, 10):
            await network.probe(started - timedelta(minutes=minutes_ago))

        # The honest node reports its one real peer; the liar boasts of a hundred thousand
        # peers and a petabyte, and reports peers it does not have (one of them the honest
        # node's subscriber).
        await network.heartbeat(honest, active_peers=1, rx_bytes_total=2 * 10**9)
        await network.report(honest, {peer: 10**9})
        await network.report(honest, {peer: 4 * 10**9})
        for _ in range(2):
            await network.heartbeat(
                liar, active_peers=10**5, rx_bytes_total=10**15, tx_bytes_total=10**15
            )
        fake = {peer: 10**15} | {wg_keys().public: 10**15 for _ in range(3)}
        assert await network.report(liar, fake) == {"accepted": 0, "ignored": 4}

        result = await network.epoch_job(datetime.now(UTC))

    assert result is not None
    (liar_score,) = await network.scores(liar)
    (honest_score,) = await network.scores(honest)
    # The liar scores what probes alone give: 50% x uptime 1.00 + 15% x latency 1.00.
    assert liar_score["breakdown"]["handshake"]["value_ppm"] == 0
    assert liar_score["breakdown"]["traffic"]["value_ppm"] == 0
    assert liar_score["breakdown"]["score_ppm"] == 650_000
    assert honest_score["breakdown"]["handshake"]["value_ppm"] == 1_000_000
    assert honest_score["breakdown"]["traffic"]["value_ppm"] > 0
    assert honest_score["breakdown"]["score_ppm"] > 650_000
    data = (await network.client.get("/v1/epochs/1/data")).json()
    liar_metrics = next(n["metrics"] for n in data["nodes"] if n["node_id"] == liar)
    assert (liar_metrics["served_bytes"], liar_metrics["peers_with_traffic"]) == ("0", 0)

    paid = await network.allocations(1)
    a, b = alice.address.lower(), bob.address.lower()
    assert paid[a] + paid[b] == BUDGET
    assert paid[a] > paid[b]
    weights = honest_score["breakdown"]["score_ppm"] + 650_000
    assert paid[b] in (BUDGET * 650_000 // weights, BUDGET * 650_000 // weights + 1)


async def test_an_epoch_nobody_probed_is_not_posted(network: Network) -> None:
    operator = await network.operator()
    async with health_server() as health:
        node = await network.node(operator, health)
        await network.heartbeat(node, active_peers=3)

        assert await network.epoch_job(datetime.now(UTC)) is None

    assert await network.outbox() == {}
    assert (await network.client.get("/v1/epochs/1")).status_code == 404
    assert (await network.client.get("/v1/epochs/1/data")).status_code == 404
    pending = await network.distributor.functions.pendingRoot().call()
    assert pending[3] == 0  # no epoch pending
    assert await network.distributor.functions.currentEpoch().call() == 0


async def test_a_lone_node_is_paid_at_most_ten_times_its_stake(network: Network, cli: Cli) -> None:
    """Issue 9, 2c: the only node of an epoch, staked at the 100 NDS minimum, used to take the
    whole 10,000 NDS budget. It gets 1,000 NDS; the other 9,000 stay in the pool (the on-chain
    total grows by 1,000 only) and `nodus rewards verify` recomputes exactly that."""
    started = datetime.now(UTC)
    alice = await network.operator()
    async with health_server() as lone_health:
        await network.node(alice, lone_health, stake=100 * NDS)
        for minutes_ago in (30, 20, 10):
            await network.probe(started - timedelta(minutes=minutes_ago))
        result = await network.post(now=datetime.now(UTC))

    assert result.budget == BUDGET
    assert await network.allocations(1) == {alice.address.lower(): 1_000 * NDS}
    assert await network.distributor.functions.totalCumulative().call() == 1_000 * NDS
    verified = await cli("rewards", "verify", "1", "--json")
    assert verified.exit_code == 0, verified.output
    checks = {c["check"]: c for c in json.loads(verified.stdout)["checks"]}
    assert checks["allocated (what the caps left stays in the pool)"]["published"] == "1,000 NDS"
    assert checks["each node's cap = 10 x its stake"]["ok"]


async def test_an_operator_paying_for_its_own_node_earns_nothing_for_that_traffic(
    network: Network,
) -> None:
    """Issue 9, 2b, through the real chain and API: Bob pays 10 NDS for a month with his own
    operator wallet and makes five devices on his node; his agent reports them all busy and
    handshaking. Alice's node serves one real subscriber with five devices. Bob's node scores
    what probes alone give; Alice's subscriber counts once."""
    started = datetime.now(UTC)
    alice, bob = await network.operator(), await network.operator()
    async with health_server() as honest_health, health_server() as dealer_health:
        honest = await network.node(alice, honest_health)
        dealer = await network.node(bob, dealer_health)
        own = await network.devices_of(dealer, bob, 5)
        customer = await fresh_wallet(network.w3, network.deployment, 100 * NDS)
        real = await network.devices_of(honest, customer, 5)
        for minutes_ago in (30, 20, 10):
            await network.probe(started - timedelta(minutes=minutes_ago))
        assert await network.report(dealer, dict.fromkeys(own, 10**9)) == {
            "accepted": 5,
            "ignored": 0,
        }
        await network.report(dealer, dict.fromkeys(own, 10**12))
        await network.report(honest, dict.fromkeys(real, 10**9))
        await network.report(honest, dict.fromkeys(real, 10**12))
        assert await network.epoch_job(datetime.now(UTC)) is not None

    (dealer_score,) = await network.scores(dealer)
    (honest_score,) = await network.scores(honest)
    assert dealer_score["breakdown"]["handshake"]["value_ppm"] == 0
    assert dealer_score["breakdown"]["traffic"]["value_ppm"] == 0
    assert dealer_score["breakdown"]["score_ppm"] == 650_000
    assert (
        "ignored the traffic of 1 wallet that is this node's own operator or agent"
        in dealer_score["reasons"]
    )
    assert honest_score["breakdown"]["handshake"]["value_ppm"] == 1_000_000
    assert honest_score["breakdown"]["traffic"]["value_ppm"] > 0
    data = (await network.client.get("/v1/epochs/1/data")).json()
    metrics = {n["node_id"]: n["metrics"] for n in data["nodes"]}
    assert (metrics[dealer]["peers_with_traffic"], metrics[dealer]["own_wallets"]) == (0, 1)
    assert metrics[honest]["peers_with_traffic"] == 1  # five devices, one wallet
    paid = await network.allocations(1)
    assert paid[alice.address.lower()] > paid[bob.address.lower()]
