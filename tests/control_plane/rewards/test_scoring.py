"""The scoring function under `nodus-score/1` (kept so epochs published under it still
verify): examples and properties (hypothesis). Version 2: test_scoring_v2.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.rewards.formula.scoring import (
    FORMULA_V1,
    PARAMS,
    PPM,
    FormulaParams,
    NodeMetrics,
    NodeScore,
    ProberView,
    Weights,
    fmt,
    latency_value,
    median_int,
    score_node,
    served_bytes,
    smooth,
    traffic_value,
)

HOUR = 3_600
NODE = "0x" + "aa" * 32
OPERATOR = "0x" + "11" * 20


def score_v1(metrics: NodeMetrics, params: FormulaParams = PARAMS) -> NodeScore:
    return score_node(metrics, params, FORMULA_V1)


def healthy(**changes: object) -> NodeMetrics:
    base = NodeMetrics(
        node_id=NODE,
        operator=OPERATOR,
        active=True,
        epoch_seconds=HOUR,
        probers=(ProberView("0x" + "01" * 20, 60, 60, 20_000),),
        peers_with_traffic=10,
        peers_with_handshake=10,
        served_bytes=5 * 10**9,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- examples --------------------------------------------------------------------------------


def test_reasons_say_what_happened_in_plain_words() -> None:
    score = score_v1(healthy(probers=(ProberView("0x" + "01" * 20, 48, 45, 70_000),)))
    assert score.uptime.reason == "uptime 0.94: 3 of 48 probe rounds failed"
    assert score.latency.reason.startswith("latency 0.98: median round trip 70.0 ms")
    assert "10 of 10 peers with traffic completed a recent handshake" in score.handshake.reason
    assert score.reasons[-1] == f"score {fmt(score.score_ppm)}"
    assert any(r.startswith("this epoch ") and "50% x 0.94" in r for r in score.reasons)


def test_a_perfect_node_scores_one_and_an_absent_node_zero() -> None:
    perfect = healthy(served_bytes=PARAMS.traffic_full_bps * HOUR)
    assert score_v1(perfect).score_ppm == PPM
    absent = NodeMetrics(node_id=NODE, operator=OPERATOR, active=True, epoch_seconds=HOUR)
    scored = score_v1(absent)
    assert scored.score_ppm == 0
    assert "no probe rounds reached this node" in scored.uptime.reason


def test_a_node_that_stops_answering_probes_loses_uptime() -> None:
    prober = "0x" + "01" * 20
    up = score_v1(healthy(probers=(ProberView(prober, 60, 60, 20_000),)))
    half = score_v1(healthy(probers=(ProberView(prober, 60, 30, 20_000),)))
    down = score_v1(healthy(probers=(ProberView(prober, 60, 0, None),)))
    assert up.uptime.value_ppm == PPM
    assert half.uptime.value_ppm == PPM // 2
    assert down.uptime.value_ppm == 0
    assert down.latency.value_ppm == 0
    assert up.raw_ppm > half.raw_ppm > down.raw_ppm
    assert down.uptime.reason == "uptime 0.00: 60 of 60 probe rounds failed"


def test_not_active_on_chain_scores_zero_but_keeps_its_history() -> None:
    score = score_v1(healthy(active=False, previous_smoothed_ppm=900_000))
    assert score.score_ppm == 0
    assert score.smoothed_ppm > 0  # measured service is remembered for when it is Active again
    assert "not Active in NodeRegistry" in score.reasons[-1]


def test_several_probers_take_the_median_so_one_liar_cannot_move_it() -> None:
    honest = (
        ProberView("0x" + "01" * 20, 60, 57, 30_000),
        ProberView("0x" + "02" * 20, 60, 58, 32_000),
    )
    liar_up = ProberView("0x" + "03" * 20, 60, 60, 1_000)
    liar_down = ProberView("0x" + "03" * 20, 60, 0, None)
    a = score_v1(healthy(probers=(*honest, liar_up)))
    b = score_v1(healthy(probers=(*honest, liar_down)))
    assert a.uptime.value_ppm == 58 * PPM // 60
    assert b.uptime.value_ppm == 57 * PPM // 60
    assert "median of 3 probers" in a.uptime.reason


def test_an_upgrade_restart_does_not_crater_the_smoothed_score() -> None:
    """Four good epochs, one where the node restarted for an upgrade and missed a third of the
    probe rounds (and its peers reconnected), then good again: the smoothed score dips a little
    and recovers; no cliff."""
    good = healthy()
    bad = healthy(
        probers=(ProberView("0x" + "01" * 20, 60, 40, 20_000),),
        peers_with_handshake=6,
        served_bytes=2 * 10**9,
    )
    smoothed: int | None = None
    history = []
    for metrics in (good, good, good, good, bad, good, good):
        score = score_v1(replace(metrics, previous_smoothed_ppm=smoothed))
        smoothed = score.smoothed_ppm
        history.append(score)
    before, during, after = history[3], history[4], history[5]
    assert during.raw_ppm < before.raw_ppm * 0.8  # the epoch alone was bad...
    assert during.score_ppm >= before.score_ppm * 0.9  # ...the score barely moved
    assert after.score_ppm > during.score_ppm
    assert "smoothed" in during.reasons[-2]
    assert "70% previous" in during.reasons[-2]


def test_the_first_epoch_starts_at_its_raw_score() -> None:
    score = score_v1(healthy())
    assert score.smoothed_ppm == score.raw_ppm
    assert "first scored epoch" in score.reasons[-2]


def test_traffic_is_log_scaled_and_capped() -> None:
    hour = HOUR
    assert traffic_value(0, hour) == 0
    one_mbit = 125_000 * hour
    ten_mbit = 10 * one_mbit
    assert 0 < traffic_value(one_mbit, hour) < traffic_value(ten_mbit, hour) < PPM
    # Ten times the traffic is far less than ten times the points (log scale).
    assert traffic_value(ten_mbit, hour) < 2 * traffic_value(one_mbit, hour)
    assert traffic_value(PARAMS.traffic_full_bps * hour, hour) == PPM
    assert traffic_value(10**18, hour) == PPM  # an inflated report cannot go past full marks


def test_one_peer_counts_for_at_most_the_per_peer_cap() -> None:
    cap = PARAMS.traffic_peer_cap_bps * HOUR
    assert served_bytes([10**15], HOUR) == cap
    assert served_bytes([10, 20, -5], HOUR) == 30


def test_latency_mapping() -> None:
    assert latency_value(0) == PPM
    assert latency_value(PARAMS.latency_good_us) == PPM
    assert latency_value(PARAMS.latency_bad_us) == 0
    assert latency_value(10**9) == 0
    middle = (PARAMS.latency_good_us + PARAMS.latency_bad_us) // 2
    assert latency_value(middle) == PPM // 2


def test_idle_nodes_get_no_handshake_or_traffic_points() -> None:
    idle = score_v1(healthy(peers_with_traffic=0, peers_with_handshake=0, served_bytes=0))
    assert idle.handshake.value_ppm == 0
    assert idle.traffic.value_ppm == 0
    assert idle.raw_ppm == (PARAMS.weights.uptime + PARAMS.weights.latency) * PPM // 100


def test_helpers() -> None:
    assert median_int([3, 1, 2]) == 2
    assert median_int([1, 2, 3, 10]) == 2
    with pytest.raises(ValueError, match="median"):
        median_int([])
    assert fmt(937_500) == "0.94"
    assert fmt(994_999) == "0.99"
    assert fmt(995_000) == "1.00"
    assert fmt(0) == "0.00"
    assert smooth(0, None) == 0
    assert smooth(1_000_000, 0) == 300_000


def test_bad_parameters_and_metrics_are_refused() -> None:
    with pytest.raises(ValueError, match="100"):
        Weights(uptime=60)
    with pytest.raises(ValueError, match="latency"):
        FormulaParams(latency_good_us=2_000_000)
    with pytest.raises(ValueError, match="answered"):
        ProberView("0x" + "01" * 20, 10, 11, None)
    with pytest.raises(ValueError, match="peers_with_handshake"):
        healthy(peers_with_handshake=11)


# --- properties ------------------------------------------------------------------------------

probers = st.lists(
    st.builds(
        lambda rounds, share, rtt: ProberView(
            "0x" + f"{rounds:040x}", rounds, rounds * share // 100, rtt
        ),
        st.integers(min_value=0, max_value=2_000),
        st.integers(min_value=0, max_value=100),
        st.one_of(st.none(), st.integers(min_value=0, max_value=10**8)),
    ),
    max_size=5,
    unique_by=lambda v: v.prober,
)


@st.composite
def node_metrics(draw: st.DrawFn) -> NodeMetrics:
    traffic = draw(st.integers(min_value=0, max_value=10_000))
    return NodeMetrics(
        node_id=NODE,
        operator=OPERATOR,
        active=draw(st.booleans()),
        epoch_seconds=draw(st.integers(min_value=1, max_value=30 * 86_400)),
        probers=tuple(draw(probers)),
        peers_with_traffic=traffic,
        peers_with_handshake=draw(st.integers(min_value=0, max_value=traffic)),
        served_bytes=draw(st.integers(min_value=0, max_value=2**70)),
        ignored_peers=draw(st.integers(min_value=0, max_value=100)),
        previous_smoothed_ppm=draw(st.one_of(st.none(), st.integers(0, PPM))),
    )


@settings(max_examples=500)
@given(node_metrics())
def test_scores_stay_within_zero_and_one(metrics: NodeMetrics) -> None:
    score = score_v1(metrics)
    for part in (score.uptime, score.handshake, score.latency, score.traffic):
        assert 0 <= part.value_ppm <= PPM
    assert 0 <= score.raw_ppm <= PPM
    assert 0 <= score.smoothed_ppm <= PPM
    assert 0 <= score.score_ppm <= PPM
    assert 0.0 <= score.score <= 1.0
    assert score.raw_ppm == sum(
        p.contribution_ppm for p in (score.uptime, score.handshake, score.latency, score.traffic)
    )
    if not metrics.active:
        assert score.score_ppm == 0


@settings(max_examples=500)
@given(
    node_metrics(),
    st.integers(min_value=1, max_value=2_000),
    st.integers(min_value=0, max_value=2_000),
    st.integers(min_value=0, max_value=2_000),
)
def test_scores_are_monotonic_in_uptime(
    metrics: NodeMetrics, rounds: int, fewer: int, more: int
) -> None:
    """With everything else equal, answering more probe rounds never lowers any score."""
    low, high = sorted((min(fewer, rounds), min(more, rounds)))
    views = list(metrics.probers)
    rtt = 40_000

    def with_answered(answered: int) -> NodeMetrics:
        mine = ProberView("0x" + "ff" * 20, rounds, answered, rtt if answered else None)
        return replace(metrics, probers=(*views, mine))

    a, b = score_v1(with_answered(low)), score_v1(with_answered(high))
    assert a.uptime.value_ppm <= b.uptime.value_ppm
    assert a.raw_ppm <= b.raw_ppm
    assert a.smoothed_ppm <= b.smoothed_ppm
    assert a.score_ppm <= b.score_ppm


@given(st.integers(0, PPM), st.integers(0, PPM), st.integers(0, PPM))
def test_smoothing_stays_between_its_inputs(raw: int, previous: int, other: int) -> None:
    smoothed = smooth(raw, previous)
    assert min(raw, previous) <= smoothed <= max(raw, previous)
    if other >= raw:
        assert smooth(other, previous) >= smoothed  # monotonic in this epoch's score


@given(st.integers(min_value=0, max_value=2**80), st.integers(min_value=1, max_value=10**7))
def test_traffic_points_are_monotonic_and_bounded(served: int, seconds: int) -> None:
    value = traffic_value(served, seconds)
    assert 0 <= value <= PPM
    assert traffic_value(served + 10**6, seconds) >= value
