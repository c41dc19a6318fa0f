"""Building an epoch from the database: signed probe samples, agents' reports filtered to real
configs, on-chain state, the pool's funding on anvil; the published data and its hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from eth_utils.crypto import keccak
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.indexer.models import RewardEpoch
from control_plane.prober import repository as probers
from control_plane.prober.models import ProbeSample
from control_plane.rewards import repository
from control_plane.rewards.formula.epoch import EMPTY_ROOT, EpochResult, PeerReport, tally_traffic
from control_plane.rewards.formula.merkle import RewardTree
from control_plane.rewards.formula.scoring import PPM, NodeMetrics, ProberView, score_node
from control_plane.rewards.posting.gather import build_epoch, total_funded
from tests.control_plane.rewards.support import (
    NDS,
    Prober,
    add_config,
    add_node,
    boast,
    fund_pool,
    new_address,
    report_peer,
    transaction,
    wg_key,
)

HOUR = timedelta(hours=1)


def epoch_window(epochs_ago: int = 1) -> tuple[datetime, datetime]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - (epochs_ago + 1) * HOUR
    return start, start + HOUR


def score_of(result: EpochResult, node_id: str) -> int:
    (score,) = [s for s in result.scores if s.node_id == node_id]
    return score.score_ppm


async def test_an_epoch_of_three_nodes_and_two_operators(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    start, end = epoch_window()
    op_a, op_b = new_address(), new_address()
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
        a1 = await add_node(session, operator=op_a)
        a2 = await add_node(session, operator=op_a)
        b1 = await add_node(session, operator=op_b)
        await prober.rounds(session, a1, start, 60)
        await prober.rounds(session, a2, start, 60, answered=30)
        await prober.rounds(session, b1, start, 60, rtt_us=200_000)
        for node in (a1, b1):
            key = await add_config(session, node)
            await report_peer(session, node, key, at=start + timedelta(minutes=5), rx=0, tx=0)
            await report_peer(
                session, node, key, at=start + timedelta(minutes=50), rx=10**9, tx=3 * 10**9
            )
    await fund_pool(chain, 10_000 * NDS)
    budget = 1_000 * NDS + 1  # an odd budget: the parts must still sum to it exactly
    previous = {op_b: 5 * NDS}

    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, budget, previous)

    assert result.budget == budget
    assert sum(result.allocations.values()) == budget
    assert set(result.allocations) == {op_a, op_b}
    assert result.cumulative[op_b] == 5 * NDS + result.allocations[op_b]
    assert result.cumulative[op_a] == result.allocations[op_a]
    assert result.total_cumulative == sum(result.cumulative.values())
    # Operator A's two nodes outweigh B's one.
    assert result.allocations[op_a] > result.allocations[op_b]
    scores = {s.node_id: s for s in result.scores}
    assert scores[a1].uptime.value_ppm == PPM
    assert scores[a2].uptime.value_ppm == PPM // 2
    assert scores[a2].uptime.reason == "uptime 0.50: answered 30 of the epoch's 60 probe rounds"
    assert scores[b1].latency.value_ppm < scores[a1].latency.value_ppm
    assert scores[a1].handshake.value_ppm == PPM
    assert scores[a1].traffic.value_ppm > 0
    assert result.probe_rounds == 60

    tree = RewardTree.build(result.cumulative.items())
    assert result.root == "0x" + tree.root.hex()
    assert result.data_hash == "0x" + keccak(result.data).hex()

    # The published data is canonical and has everything needed to recompute the root.
    data = json.loads(result.data)
    assert json.dumps(data, sort_keys=True, separators=(",", ":")).encode() == result.data
    assert data["formula"]["version"] == "nodus-score/2"
    assert data["budget"]["effective"] == str(budget)
    assert [n["node_id"] for n in data["nodes"]] == sorted([a1, a2, b1])
    leaves = [(leaf["account"], int(leaf["cumulative_amount"])) for leaf in data["leaves"]]
    assert "0x" + RewardTree.build(leaves).root.hex() == data["root"] == result.root
    assert sum(int(a["amount"]) for a in data["allocations"]) == budget
    (node_a1,) = [n for n in data["nodes"] if n["node_id"] == a1]
    assert node_a1["metrics"]["probers"] == [
        {
            "prober": prober.address,
            "rounds": 60,
            "answered": 60,
            "median_rtt_us": 20_000,
            "epoch_rounds": 60,
        }
    ]
    assert node_a1["breakdown"]["score_ppm"] == scores[a1].score_ppm
    recomputed = score_node(
        NodeMetrics(
            node_id=a1,
            operator=op_a,
            active=True,
            epoch_seconds=node_a1["metrics"]["epoch_seconds"],
            probers=tuple(ProberView(**p) for p in node_a1["metrics"]["probers"]),
            peers_with_traffic=node_a1["metrics"]["peers_with_traffic"],
            peers_with_handshake=node_a1["metrics"]["peers_with_handshake"],
            served_bytes=int(node_a1["metrics"]["served_bytes"]),
            stake=int(node_a1["stake"]),
        )
    )
    assert recomputed.score_ppm == node_a1["breakdown"]["score_ppm"]

    # Recorded, then read back.
    async with transaction(sessions) as session:
        await repository.save_epoch_scores(session, result)
        await repository.save_epoch_scores(session, result)  # a rebuild replaces, not adds
    async with transaction(sessions) as session:
        assert await repository.epoch_data(session, 31337, 1) == result.data
        assert await repository.cumulative_of(session, 31337, 1) == result.cumulative
        assert await repository.count_scores(session, 31337, 1) == 3
        latest = await repository.latest_scores(session, 31337, [a1, b1])
        assert latest == {a1: scores[a1].score_ppm, b1: scores[b1].score_ppm}


async def test_a_node_that_lies_in_its_heartbeats_gains_nothing(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """Two nodes, measured the same by the prober and serving one real peer the same. The liar
    also reports huge heartbeats and invented peers with huge traffic and fresh handshakes, and
    keeps reporting its peer after the subscription lapsed: its score is exactly the honest
    node's, and its reasons say what was ignored."""
    start, end = epoch_window()
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
        honest = await add_node(session, operator=new_address())
        liar = await add_node(session, operator=new_address())
        for node in (honest, liar):
            await prober.rounds(session, node, start, 60, answered=55)
            key = await add_config(session, node)
            await report_peer(session, node, key, at=start + timedelta(minutes=1), rx=0, tx=0)
            await report_peer(session, node, key, at=end - timedelta(minutes=1), rx=10**8, tx=10**8)
        for minute in range(0, 60, 5):
            await boast(session, liar, start + timedelta(minutes=minute))
        for _ in range(5):
            invented = wg_key()  # no config anywhere
            await report_peer(session, liar, invented, at=start + timedelta(minutes=2), rx=0, tx=0)
            await report_peer(
                session, liar, invented, at=end - timedelta(minutes=2), rx=10**13, tx=10**13
            )
        # A config of the liar whose subscriber lapsed before the epoch: its traffic is fake.
        lapsed = await add_config(session, liar, expires_at=start - timedelta(days=1))
        await report_peer(session, liar, lapsed, at=start + timedelta(minutes=3), rx=0, tx=0)
        await report_peer(session, liar, lapsed, at=end - timedelta(minutes=3), rx=10**12, tx=0)
        # A real config of the honest node reported by the liar: not the liar's config.
        stolen = await add_config(session, honest)
        await report_peer(session, liar, stolen, at=start + timedelta(minutes=4), rx=0, tx=0)
        await report_peer(session, liar, stolen, at=end - timedelta(minutes=4), rx=10**12, tx=0)
    await fund_pool(chain, 100 * NDS)

    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 100 * NDS, {})

    scores = {s.node_id: s for s in result.scores}
    assert scores[liar].score_ppm == scores[honest].score_ppm
    assert scores[liar].breakdown() == scores[honest].breakdown()
    assert any("ignored 7 reported peers" in r for r in scores[liar].reasons)
    operators = {s.node_id: s.operator for s in result.scores}
    assert result.allocations[operators[liar]] == result.allocations[operators[honest]]


async def test_a_node_that_stops_answering_probes_loses_uptime(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """The node keeps sending heartbeats, but stopped answering probes halfway through: uptime
    is 0.5 and the healthy node gets the larger part."""
    start, end = epoch_window()
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
        steady = await add_node(session, operator=new_address())
        stopped = await add_node(session, operator=new_address())
        await prober.rounds(session, steady, start, 60)
        await prober.rounds(session, stopped, start, 60, answered=30)
        for minute in range(0, 60, 2):
            await boast(session, stopped, start + timedelta(minutes=minute))
    await fund_pool(chain, 100 * NDS)
    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 100 * NDS, {})
    scores = {s.node_id: s for s in result.scores}
    assert scores[stopped].uptime.value_ppm == PPM // 2
    assert scores[stopped].score_ppm < scores[steady].score_ppm
    assert scores[stopped].uptime.reason == (
        "uptime 0.50: answered 30 of the epoch's 60 probe rounds"
    )


async def test_probers_median_and_untrusted_samples(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """Three probers: the median counts, so one dishonest prober cannot move a node. Samples of
    a prober that is not allow-listed, of a revoked prober, or whose row was tampered with after
    signing do not count at all."""
    start, end = epoch_window()
    honest1, honest2, flaky, revoked = Prober(), Prober(), Prober(), Prober()
    async with transaction(sessions) as session:
        for p in (honest1, honest2, flaky, revoked):
            await p.allow(session)
        node = await add_node(session, operator=new_address())
        await honest1.rounds(session, node, start, 60, answered=57)
        await honest2.rounds(session, node, start, 60, answered=58)
        await flaky.rounds(session, node, start, 60, answered=0)
        await revoked.rounds(session, node, start, 60, answered=0)
        # A prober that is not allow-listed cannot store samples at all (a foreign key; the API
        # refuses it, see tests/control_plane/prober). A revoked one's rows stay but no longer
        # count.
        await probers.revoke_prober(session, revoked.address)
        # Tampering: honest1's failed rounds rewritten as answered (the signature no longer
        # matches, so those rows are dropped on read and honest1 has 57 rounds, all answered).
        await session.execute(
            update(ProbeSample)
            .where(ProbeSample.prober == honest1.address, ProbeSample.error == "timeout")
            .values(rtt_us=[1_000], error=None)
        )
    await fund_pool(chain, 100 * NDS)
    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 100 * NDS, {})
    (score,) = result.scores
    # Per prober: honest1 57/57 = 1.0, honest2 58/60, flaky 0/60 -> median honest2's.
    assert score.uptime.value_ppm == 58 * PPM // 60
    assert "median of 3 probers" in score.uptime.reason
    views = {p["prober"]: p for p in json.loads(result.data)["nodes"][0]["metrics"]["probers"]}
    assert set(views) == {honest1.address, honest2.address, flaky.address}
    assert views[honest1.address]["rounds"] == 57


async def test_inactive_nodes_score_zero_and_the_pool_caps_the_budget(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    start, end = epoch_window()
    prober = Prober()
    op_live, op_exiting = new_address(), new_address()
    async with transaction(sessions) as session:
        await prober.allow(session)
        live = await add_node(session, operator=op_live)
        exiting = await add_node(session, operator=op_exiting, active=False)
        await prober.rounds(session, live, start, 10)
        await prober.rounds(session, exiting, start, 10)
    funded_before = await total_funded(chain)
    await fund_pool(chain, 30 * NDS)
    previous = {new_address(): funded_before + 10 * NDS}  # 20 NDS of headroom are left

    async with transaction(sessions) as session:
        result = await build_epoch(session, chain, 1, start, end, 1_000 * NDS, previous)
    assert result.total_funded == funded_before + 30 * NDS
    assert result.budget == 20 * NDS
    assert result.allocations == {op_live: 20 * NDS, op_exiting: 0}
    assert op_exiting not in result.cumulative
    scores = {s.node_id: s for s in result.scores}
    assert scores[exiting].score_ppm == 0
    assert scores[exiting].raw_ppm > 0
    assert "not Active in NodeRegistry" in scores[exiting].reasons[-1]


async def test_no_score_no_pay_and_smoothing_across_epochs(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """An epoch where nothing was measured allocates nothing (and has no leaf); the next epoch
    smooths from the recorded one."""
    first_start, first_end = epoch_window(2)
    second_start, second_end = epoch_window(1)
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
        node = await add_node(session, operator=new_address())
    await fund_pool(chain, 100 * NDS)

    async with transaction(sessions) as session:
        empty = await build_epoch(session, chain, 1, first_start, first_end, 10 * NDS, {})
        assert empty.allocations == {empty.scores[0].operator: 0}
        assert empty.cumulative == {}
        assert empty.root == EMPTY_ROOT
        assert empty.probe_rounds == 0
        await repository.save_epoch_scores(session, empty)

    async with transaction(sessions) as session:
        await prober.rounds(session, node, second_start, 60)
    async with transaction(sessions) as session:
        second = await build_epoch(session, chain, 2, second_start, second_end, 10 * NDS, {})
    (score,) = second.scores
    assert score.raw_ppm > 0
    assert score.smoothed_ppm == (3 * score.raw_ppm + 7 * 0 + 5) // 10
    assert sum(second.allocations.values()) == 10 * NDS


async def test_the_last_accepted_epoch_gives_the_previous_leaves(
    sessions: async_sessionmaker[AsyncSession],
    chain: Web3ChainReader,
    deployment: Deployment,
) -> None:
    """Epoch 1 accepted, epoch 2 revoked on-chain: epoch 3 builds on epoch 1's leaves."""
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
        node = await add_node(session, operator=new_address())
    await fund_pool(chain, 100 * NDS)
    results = []
    for epoch in (1, 2):
        start, end = epoch_window(3 - epoch)
        async with transaction(sessions) as session:
            await prober.rounds(session, node, start, 10)
        async with transaction(sessions) as session:
            previous = await repository.latest_accepted_cumulative(session, 31337, epoch)
            result = await build_epoch(session, chain, epoch, start, end, 10 * NDS, previous)
            await repository.save_epoch_scores(session, result)
            await session.execute(
                insert(RewardEpoch).values(
                    chain_id=31337,
                    epoch=epoch,
                    root=result.root,
                    total_cumulative=result.total_cumulative,
                    data_hash=result.data_hash,
                    valid_at=datetime.now(UTC),
                    status="accepted" if epoch == 1 else "revoked",
                    proposed_tx_hash="0x" + f"{epoch:064x}",
                    proposed_log_index=0,
                    proposed_block=epoch,
                )
            )
        results.append(result)
    async with transaction(sessions) as session:
        previous = await repository.latest_accepted_cumulative(session, 31337, 3)
    assert previous == results[0].cumulative
    assert sum(previous.values()) == 10 * NDS


def test_traffic_counts_differences_resets_and_only_real_peers() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fresh = timedelta(seconds=180)

    def report(
        peer: str,
        minute: int,
        rx: int,
        *,
        real: bool = True,
        baseline: bool = False,
        handshake: bool = True,
    ) -> PeerReport:
        at = start + timedelta(minutes=minute)
        handshake_at = at - timedelta(seconds=10) if handshake else None
        wallet = f"0x{peer * 40}"[:42] if real else None  # one wallet per peer here
        return PeerReport("n", peer, at, handshake_at, rx, 0, wallet, baseline)

    tallies = tally_traffic(
        [
            # Counted from the baseline before the epoch (100), with a counter reset at 30.
            report("a", -5, 100, real=False, baseline=True),
            report("a", 10, 150),
            report("a", 20, 400),
            report("a", 30, 50),
            # Traffic, but never a recent handshake: counts as a peer with traffic only.
            report("b", 10, 0, handshake=False),
            report("b", 40, 500, handshake=False),
            # Never a real config: ignored.
            report("c", 10, 0, real=False),
            report("c", 40, 10**12, real=False),
            # A real config that moved no bytes.
            report("d", 10, 7),
            report("d", 40, 7),
        ],
        fresh,
    )
    tally = tallies["n"]
    # a: 50 + 250 + 50 after the reset; d: its first report counts from zero (no baseline).
    assert tally.handshake_peer_bytes == (7, 350)
    assert tally.peers_with_traffic == 3  # a, b, d
    assert tally.peers_with_handshake == 2  # a, d
    assert tally.ignored_peers == 1
