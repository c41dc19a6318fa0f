"""Splitting an epoch's budget over operators, in integer wei (pure).

- The budget is capped by what the pool can still pay (`cap_budget`).
- Each operator weighs the sum of its nodes' scores (ppm); the budget is split in proportion by
  the largest-remainder method, so the parts are integers that sum to the budget exactly (or all
  are 0 when every weight is 0). Ties in remainder go to the lower address, so the split is
  deterministic.
- Version 2 splits the budget over nodes (each weighs its score) and caps each node's part at
  its stake times `stake_cap_multiple` (`allocate_capped`); what the caps withhold stays in the
  pool, so the parts then sum to less than the budget. An operator's part is its nodes' sum.
- Cumulative amounts (the RewardDistributor's leaves) are the previous cumulative amounts plus
  this epoch's parts: they never decrease, and an operator paid before keeps its leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from control_plane.rewards.formula.scoring import NodeScore


def cap_budget(budget: int, total_funded: int, previous_total: int) -> int:
    """The most an epoch may add: the budget, but never more than the pool still holds
    unallocated (`total_funded - previous_total`), and never negative."""
    if budget < 0:
        raise ValueError("a budget is not negative")
    return max(0, min(budget, total_funded - previous_total))


def operator_weights(scores: Iterable[NodeScore]) -> dict[str, int]:
    """Each operator's weight: the sum of its nodes' scores in ppm (operators lower-case)."""
    weights: dict[str, int] = {}
    for score in scores:
        operator = score.operator.lower()
        weights[operator] = weights.get(operator, 0) + score.score_ppm
    return weights


def allocate(budget: int, weights: Mapping[str, int]) -> dict[str, int]:
    """`budget` split over `weights` by the largest-remainder method: every operator in
    `weights` gets an entry; the entries sum to `budget`, or are all 0 if the weights are."""
    if budget < 0:
        raise ValueError("a budget is not negative")
    if any(w < 0 for w in weights.values()):
        raise ValueError("weights are not negative")
    total = sum(weights.values())
    if total == 0 or budget == 0:
        return dict.fromkeys(weights, 0)
    parts: dict[str, int] = {}
    remainders: list[tuple[int, str]] = []
    for operator, weight in weights.items():
        quotient, remainder = divmod(budget * weight, total)
        parts[operator] = quotient
        remainders.append((remainder, operator))
    leftover = budget - sum(parts.values())
    # Largest remainder first; equal remainders: the lower address first. The sum of the
    # remainders is `leftover * total` with each below `total`, so more than `leftover` of them
    # are positive and an operator of weight 0 never gets a unit.
    remainders.sort(key=lambda item: (-item[0], item[1]))
    for _, operator in remainders[:leftover]:
        parts[operator] += 1
    return parts


def allocate_capped(
    budget: int, weights: Mapping[str, int], caps: Mapping[str, int]
) -> dict[str, int]:
    """Version 2: `budget` split over `weights` (per node) by the largest-remainder method, each
    part then cut to its cap (every key of `weights` needs one). The parts sum to at most
    `budget`; the difference is what the caps left in the pool."""
    if any(caps[key] < 0 for key in weights):
        raise ValueError("caps are not negative")
    return {key: min(part, caps[key]) for key, part in allocate(budget, weights).items()}


def stake_cap(stake: int, multiple: int) -> int:
    """The most a node may receive in one epoch: `multiple` times its stake (wei)."""
    if stake < 0 or multiple <= 0:
        raise ValueError("a stake is not negative and the multiple is positive")
    return stake * multiple


def by_operator(node_parts: Mapping[str, int], operators: Mapping[str, str]) -> dict[str, int]:
    """Nodes' parts summed per operator (lower-case); every operator of a node gets an entry."""
    parts: dict[str, int] = {}
    for node_id, amount in node_parts.items():
        operator = operators[node_id].lower()
        parts[operator] = parts.get(operator, 0) + amount
    return parts


def cumulate(previous: Mapping[str, int], parts: Mapping[str, int]) -> dict[str, int]:
    """The new cumulative amount per operator: previous + this epoch's part. Operators with a
    total of 0 get no leaf; everyone paid before keeps theirs."""
    before, now = _lower(previous), _lower(parts)
    result: dict[str, int] = {}
    for operator in sorted(set(before) | set(now)):
        amount = before.get(operator, 0) + now.get(operator, 0)
        if amount > 0:
            result[operator] = amount
    return result


def _lower(amounts: Mapping[str, int]) -> dict[str, int]:
    lowered: dict[str, int] = {}
    for account, amount in amounts.items():
        if amount < 0:
            raise ValueError("amounts are not negative")
        key = account.lower()
        if key in lowered:
            raise ValueError(f"{key} appears twice")
        lowered[key] = amount
    return lowered
