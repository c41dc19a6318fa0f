"""The scoring function under `nodus-score/2`: uptime counts every probe round of the epoch, and
handshake and latency count for the share of the epoch the node was probed in (issue 9, 2c)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.rewards.formula.scoring import (
    FORMULA_V1,
    FORMULA_VERSION,
    PARAMS,
    PPM,
    NodeMetrics,
    ProberView,
    presence_ppm,
    score_node,
)

HOUR = 3_600
NODE = "0x" + "aa" * 32
OPERATOR = "0x" + "11" * 20
P1, P2, P3 = ("0x" + f"{i:02x}" * 20 for i in (1, 2, 3))


def node(*probers: ProberView, **changes: object) -> NodeMetrics:
    base = NodeMetrics(
        node_id=NODE,
        operator=OPERATOR,
        active=True,
        epoch_seconds=HOUR,
        probers=probers,
        peers_with_traffic=1,
        peers_with_handshake=1,
        served_bytes=PARAMS.traffic_peer_cap_bps * HOUR // 100,
        stake=100 * 10**18,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_version_two_is_what_new_epochs_use() -> None:
    assert FORMULA_VERSION == "nodus-score/2"
    with pytest.raises(ValueError, match="unknown formula version"):
        score_node(node(), version="nodus-score/9")


def test_a_node_probed_only_at_the_end_of_the_epoch_earns_its_share_not_full_uptime() -> None:
    """The finding: a node first probed 30 s before the epoch ended was told "uptime 1.00: 0 of
    1 rounds failed". Under version 2 its one answered round is one of the epoch's 60."""
    late = node(ProberView(P1, rounds=1, answered=1, median_rtt_us=20_000, epoch_rounds=60))
    full = node(ProberView(P1, rounds=60, answered=60, median_rtt_us=20_000, epoch_rounds=60))
    late_score, full_score = score_node(late), score_node(full)

    assert late_score.uptime.value_ppm == PPM // 60
    assert late_score.uptime.reason == (
        "uptime 0.02: answered 1 of the epoch's 60 probe rounds, probed in 1"
    )
    assert full_score.uptime.value_ppm == PPM
    # Its fast answer and its one handshaking peer count for the sixtieth it was there.
    assert late_score.latency.value_ppm == PPM // 60
    assert late_score.handshake.value_ppm == PPM // 60
    assert "x 0.02, the share of the epoch's probe rounds" in late_score.latency.reason
    # Everything but traffic (already a rate over the whole epoch) is at most its share.
    assert late_score.raw_ppm - late_score.traffic.contribution_ppm <= PPM // 60
    assert late_score.raw_ppm * 10 < full_score.raw_ppm

    # The same node scored the version 1 way: what the finding reported.
    old = replace(late, probers=(replace(late.probers[0], epoch_rounds=None),))
    assert score_node(old, version=FORMULA_V1).uptime.reason == (
        "uptime 1.00: 0 of 1 probe rounds failed"
    )


def test_a_node_present_for_one_percent_gets_about_one_percent_of_uptime() -> None:
    present = node(ProberView(P1, rounds=10, answered=10, median_rtt_us=1, epoch_rounds=1_000))
    assert score_node(present).uptime.value_ppm == PPM // 100
    assert presence_ppm(present.probers) == PPM // 100


def test_a_prober_that_never_probed_the_node_counts_against_it() -> None:
    """Three probers ran; one never reached the node (rounds 0): its 0 is in the median."""
    metrics = node(
        ProberView(P1, 60, 60, 20_000, epoch_rounds=60),
        ProberView(P2, 60, 30, 20_000, epoch_rounds=60),
        ProberView(P3, 0, 0, None, epoch_rounds=60),
    )
    score = score_node(metrics)
    assert score.uptime.value_ppm == PPM // 2
    assert "median of 3 probers" in score.uptime.reason
    assert "answered 0 of the epoch's 60 probe rounds, probed in 0" in score.uptime.reason
    assert presence_ppm(metrics.probers) == PPM  # the median prober probed it every round


def test_no_prober_ran_means_no_uptime() -> None:
    score = score_node(node())
    assert score.uptime.value_ppm == 0
    assert score.uptime.reason == "uptime 0.00: no prober ran a round in this epoch"
    assert score.latency.value_ppm == 0
    assert score.handshake.value_ppm == 0


def test_a_full_node_scores_as_before() -> None:
    """Probed and answering every round: version 2 equals version 1 but for the wording."""
    metrics = node(ProberView(P1, 60, 57, 70_000, epoch_rounds=60), peers_with_traffic=4)
    v2 = score_node(metrics)
    v1 = score_node(metrics, version=FORMULA_V1)
    assert v2.breakdown() == v1.breakdown()
    assert "1 of 4 paying wallets with traffic completed a recent handshake" in v2.reasons[1]


def test_own_wallets_are_named_in_the_reasons() -> None:
    score = score_node(node(own_wallets=1))
    assert "ignored the traffic of 1 wallet that is this node's own operator or agent" in (
        score.reasons
    )


def test_bad_views_are_refused() -> None:
    with pytest.raises(ValueError, match="epoch_rounds"):
        ProberView(P1, 10, 5, None, epoch_rounds=9)
    with pytest.raises(ValueError, match="epoch_rounds"):
        ProberView(P1, 0, 0, None, epoch_rounds=0)
    with pytest.raises(ValueError, match="not negative"):
        node(stake=-1)


# --- properties ------------------------------------------------------------------------------


@st.composite
def views(draw: st.DrawFn) -> tuple[ProberView, ...]:
    count = draw(st.integers(min_value=0, max_value=4))
    result = []
    for i in range(count):
        ran = draw(st.integers(min_value=1, max_value=2_000))
        rounds = draw(st.integers(min_value=0, max_value=ran))
        answered = draw(st.integers(min_value=0, max_value=rounds))
        rtt = draw(st.integers(min_value=0, max_value=10**7)) if answered else None
        result.append(ProberView("0x" + f"{i:040x}", rounds, answered, rtt, epoch_rounds=ran))
    return tuple(result)


@settings(max_examples=300)
@given(views(), st.integers(0, 50), st.integers(0, 2**70), st.booleans())
def test_scores_stay_within_zero_and_one(
    probers: tuple[ProberView, ...], peers: int, served: int, active: bool
) -> None:
    score = score_node(
        node(*probers, peers_with_traffic=peers, peers_with_handshake=peers, served_bytes=served)
    )
    for part in (score.uptime, score.handshake, score.latency, score.traffic):
        assert 0 <= part.value_ppm <= PPM
    assert 0 <= score.raw_ppm <= PPM
    # Uptime never exceeds the share of the epoch the node was probed in.
    assert score.uptime.value_ppm <= presence_ppm(probers)


@settings(max_examples=300)
@given(views(), st.integers(1, 2_000), st.integers(0, 2_000), st.integers(0, 2_000))
def test_answering_more_of_the_epoch_never_lowers_the_score(
    probers: tuple[ProberView, ...], ran: int, fewer: int, more: int
) -> None:
    low, high = sorted((min(fewer, ran), min(more, ran)))

    def with_answered(answered: int) -> NodeMetrics:
        mine = ProberView("0x" + "ff" * 20, ran, answered, 40_000 if answered else None, ran)
        return node(*probers, mine)

    a, b = score_node(with_answered(low)), score_node(with_answered(high))
    assert a.uptime.value_ppm <= b.uptime.value_ppm
    assert a.raw_ppm <= b.raw_ppm
