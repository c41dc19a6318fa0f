"""Allocation in integer wei: examples and properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.rewards.formula.allocation import (
    allocate,
    allocate_capped,
    by_operator,
    cap_budget,
    cumulate,
    operator_weights,
    stake_cap,
)
from control_plane.rewards.formula.scoring import NodeMetrics, ProberView, score_node

NDS = 10**18


def address(n: int) -> str:
    return "0x" + f"{n:040x}"


def test_largest_remainder_splits_exactly() -> None:
    parts = allocate(100, {address(1): 1, address(2): 1, address(3): 1})
    assert sum(parts.values()) == 100
    # 33.33 each; the one unit left over goes to the lowest address (equal remainders).
    assert parts == {address(1): 34, address(2): 33, address(3): 33}


def test_the_largest_remainder_wins_the_leftover() -> None:
    parts = allocate(10, {address(1): 15, address(2): 85})  # 1.5 and 8.5: tie -> lower address
    assert parts == {address(1): 2, address(2): 8}
    parts = allocate(10, {address(1): 14, address(2): 86})  # 1.4 and 8.6
    assert parts == {address(1): 1, address(2): 9}


def test_all_zero_scores_allocate_nothing() -> None:
    assert allocate(1000 * NDS, {address(1): 0, address(2): 0}) == {address(1): 0, address(2): 0}
    assert allocate(1000 * NDS, {}) == {}
    assert allocate(0, {address(1): 5}) == {address(1): 0}


def test_the_budget_is_capped_by_what_the_pool_can_still_pay() -> None:
    assert cap_budget(100, total_funded=1_000, previous_total=950) == 50
    assert cap_budget(100, total_funded=1_000, previous_total=0) == 100
    assert cap_budget(100, total_funded=1_000, previous_total=1_000) == 0
    assert cap_budget(100, total_funded=10, previous_total=50) == 0  # never negative
    with pytest.raises(ValueError, match="negative"):
        cap_budget(-1, 10, 0)


def test_operators_weigh_the_sum_of_their_nodes_scores() -> None:
    prober = ProberView(address(9), 10, 10, 10_000, epoch_rounds=10)

    def node(n: int, operator: str, active: bool = True) -> NodeMetrics:
        return NodeMetrics(
            node_id="0x" + f"{n:064x}",
            operator=operator,
            active=active,
            epoch_seconds=3_600,
            probers=(prober,),
        )

    scores = [score_node(node(1, address(1))), score_node(node(2, address(1)))]
    scores.append(score_node(node(3, address(0xB2).upper().replace("0X", "0x"))))
    scores.append(score_node(node(4, address(3), active=False)))
    weights = operator_weights(scores)
    assert weights[address(1)] == 2 * weights[address(0xB2)]
    assert weights[address(3)] == 0
    parts = allocate(90, weights)
    assert parts == {address(1): 60, address(0xB2): 30, address(3): 0}


def test_cumulative_amounts_carry_everyone_paid_before() -> None:
    previous = {address(1): 100, address(2): 50}
    leaves = cumulate(previous, {address(1): 10, address(3): 5, address(4): 0})
    assert leaves == {address(1): 110, address(2): 50, address(3): 5}
    with pytest.raises(ValueError, match="twice"):
        cumulate({address(0xABC): 1, address(0xABC).upper().replace("0X", "0x"): 2}, {})


weights_strategy = st.dictionaries(
    st.integers(min_value=1, max_value=500).map(address),
    st.integers(min_value=0, max_value=10**6 * 50),
    max_size=40,
)


@settings(max_examples=500)
@given(st.integers(min_value=0, max_value=10**30), weights_strategy)
def test_allocations_sum_exactly_to_the_budget(budget: int, weights: dict[str, int]) -> None:
    parts = allocate(budget, weights)
    assert set(parts) == set(weights)
    assert all(v >= 0 for v in parts.values())
    if sum(weights.values()) == 0:
        assert sum(parts.values()) == 0
    else:
        assert sum(parts.values()) == budget
    total = sum(weights.values())
    for operator, weight in weights.items():
        if total:
            exact = budget * weight / total
            assert abs(parts[operator] - exact) < 1 + 1e-9 * exact  # within one wei of fair
        if weight == 0:
            assert parts[operator] == 0


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**24), weights_strategy),
        min_size=1,
        max_size=8,
    )
)
def test_cumulative_amounts_never_decrease(epochs: list[tuple[int, dict[str, int]]]) -> None:
    leaves: dict[str, int] = {}
    paid = 0
    for budget, weights in epochs:
        parts = allocate(budget, weights)
        new = cumulate(leaves, parts)
        for operator, amount in leaves.items():
            assert new[operator] >= amount
        paid += sum(parts.values())
        assert sum(new.values()) == paid
        leaves = new


# --- version 2: each node's part capped by its stake ----------------------------------------


def test_a_lone_node_takes_at_most_its_stake_cap_and_the_rest_stays_in_the_pool() -> None:
    """The finding: the only node of an epoch (100 NDS staked) took the whole 10,000 NDS."""
    node = "0x" + "aa" * 32
    cap = stake_cap(100 * NDS, 10)
    parts = allocate_capped(10_000 * NDS, {node: 16_666}, {node: cap})
    assert parts == {node: 1_000 * NDS}
    assert 10_000 * NDS - sum(parts.values()) == 9_000 * NDS  # left in the pool


def test_caps_cut_only_the_nodes_above_them() -> None:
    small, big, idle = "0x" + "01" * 32, "0x" + "02" * 32, "0x" + "03" * 32
    parts = allocate_capped(
        1_000 * NDS + 1,
        {small: 1, big: 1, idle: 0},
        {small: 100 * NDS, big: 10_000 * NDS, idle: 10 * NDS},
    )
    # Unlimited, each would get 500 NDS (+1 wei to the lower id).
    assert parts == {small: 100 * NDS, big: 500 * NDS, idle: 0}
    assert by_operator(parts, {small: address(1), big: address(1), idle: address(2)}) == {
        address(1): 600 * NDS,
        address(2): 0,
    }
    with pytest.raises(ValueError, match="positive"):
        stake_cap(100, 0)


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=10**30),
    st.dictionaries(
        st.integers(min_value=1, max_value=50).map(address),
        st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(0, 10**29)),
        max_size=8,
    ),
)
def test_capped_parts_are_exact_and_never_above_a_cap_or_the_budget(
    budget: int, nodes: dict[str, tuple[int, int]]
) -> None:
    weights = {n: w for n, (w, _) in nodes.items()}
    caps = {n: c for n, (_, c) in nodes.items()}
    parts = allocate_capped(budget, weights, caps)
    uncapped = allocate(budget, weights)
    assert set(parts) == set(nodes)
    assert sum(parts.values()) <= budget
    for n, part in parts.items():
        assert part == min(uncapped[n], caps[n])
    if all(uncapped[n] <= caps[n] for n in nodes):
        assert sum(parts.values()) == (budget if sum(weights.values()) else 0)
