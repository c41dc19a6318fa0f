"""`nodus rewards verify`'s recomputation: from an epoch's published data, the scores, the
budget, the allocation and the cumulative leaves, with the control plane's own reference
implementation (control_plane.rewards), under the formula version the data names.

- `nodus-score/2` (every epoch scored now): uptime over each prober's rounds of the whole
  epoch, paying wallets only, and each node's part capped at its stake times the published
  `stake_cap_multiple` (what the caps withhold stays in the pool);
- `nodus-score/1` (epochs published before it): its own rules, kept so they still verify.

Pure: the caller fetches the data and the chain's records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.rewards.formula.allocation import (
    allocate,
    allocate_capped,
    by_operator,
    cap_budget,
    cumulate,
    operator_weights,
    stake_cap,
)
from control_plane.rewards.formula.scoring import (
    FORMULA_V1,
    FORMULA_V2,
    VERSIONS,
    FormulaParams,
    NodeMetrics,
    NodeScore,
    ProberView,
    Weights,
    score_node,
)
from nodus_cli.support.output import format_nds, short_hex


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison: what the published data says (or hashes to) against what the chain says
    or what recomputing it from the published inputs gives."""

    what: str
    found: str
    expected: str
    ok: bool


def parse_wei(value: object, field: str) -> int:
    """An amount in wei as the API writes it: a decimal string (or a JSON integer)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{field} is not an amount: {value!r}")
    if isinstance(value, str) and not value.isdigit():
        raise ValueError(f"{field} is not a decimal amount in wei: {value!r}")
    amount = int(value)
    if not 0 <= amount < 2**256:
        raise ValueError(f"{field} is out of range: {value!r}")
    return amount


def leaf_map(leaves: object, what: str) -> dict[str, int]:
    """`[{"account", "cumulative_amount"}]` (or `"amount"`; or a plain `{account: amount}`
    object) -> {lower-case account: wei}."""
    if isinstance(leaves, dict):
        leaves = [{"account": a, "amount": v} for a, v in leaves.items()]
    if not isinstance(leaves, list):
        raise ValueError(f"{what} is not a list")
    amounts: dict[str, int] = {}
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, dict) or not isinstance(leaf.get("account"), str):
            raise ValueError(f"{what}[{i}] has no account")
        account = leaf["account"].lower()
        if len(account) != 42 or not account.startswith("0x"):
            raise ValueError(f"{what}[{i}]: {leaf['account']!r} is not an address")
        if account in amounts:
            raise ValueError(f"{what}: {account} appears twice")
        amount = leaf.get("cumulative_amount", leaf.get("amount"))
        amounts[account] = parse_wei(amount, f"{what}[{i}] amount")
    return amounts


def parse_leaves(data: object) -> dict[str, int]:
    """The cumulative leaves of published epoch data: `leaves: [{"account",
    "cumulative_amount"}]` (amounts: decimal strings of wei)."""
    if not isinstance(data, dict):
        raise ValueError("the published data is not a JSON object")
    if "leaves" not in data:
        raise ValueError("the published data has no `leaves`")
    return leaf_map(data["leaves"], "leaves")


def compare(what: str, found: dict[str, int], expected: dict[str, int], limit: int = 3) -> Check:
    """Amounts per account: on a mismatch, the first few differing accounts on each side."""
    if found == expected:
        return Check(what, f"{len(found)} entries", "same", True)
    keys = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""

    def side(amounts: dict[str, int]) -> str:
        return (
            "; ".join(
                f"{short_hex(k)}: {format_nds(amounts[k]) if k in amounts else 'none'}"
                for k in keys[:limit]
            )
            + more
        )

    return Check(what, side(found), side(expected), False)


def recompute(data: dict[str, Any], previous_accepted: dict[str, int]) -> list[Check]:
    """Scores from the published metrics, the budget cap, the allocation and the cumulative
    leaves, and the previous leaves against the last accepted epoch's (`previous_accepted`)."""
    version = data["formula"]["version"]
    if version not in VERSIONS:
        return [
            Check(
                "scoring formula version",
                str(version),
                f"one of {', '.join(VERSIONS)} (the ones this nodus knows: upgrade it to "
                "recompute)",
                False,
            )
        ]
    params = formula_params(data["formula"]["params"])
    checks: list[Check] = []
    if version == FORMULA_V2:
        checks.extend(_prober_rounds_checks(data))
    scores: list[NodeScore] = []
    wrong: list[str] = []
    for node in data["nodes"]:
        score = score_node(node_metrics(node, version), params, version)
        scores.append(score)
        if score.breakdown() != node["breakdown"] or list(score.reasons) != node["reasons"]:
            wrong.append(short_hex(str(node["node_id"])))
    checks.append(
        Check(
            f"scores recomputed from each node's metrics ({version})",
            f"{len(scores)} node(s)",
            "same" if not wrong else f"differ for {', '.join(wrong)}",
            not wrong,
        )
    )

    budget = data["budget"]
    previous = leaf_map(data["previous_leaves"], "previous_leaves")
    previous_total = parse_wei(budget["previous_total"], "budget.previous_total")
    requested = parse_wei(budget["requested"], "budget.requested")
    funded = parse_wei(budget["total_funded"], "budget.total_funded")
    effective = parse_wei(budget["effective"], "budget.effective")
    expected_effective = cap_budget(requested, funded, previous_total)
    checks.append(
        Check(
            "epoch budget (requested, capped by what the pool can still pay)",
            format_nds(effective),
            format_nds(expected_effective),
            effective == expected_effective and previous_total == sum(previous.values()),
        )
    )
    allocations: dict[str, int] = {}
    for i, part in enumerate(data["allocations"]):
        allocations[str(part["operator"]).lower()] = parse_wei(part["amount"], f"allocations[{i}]")
    if version == FORMULA_V1:
        expected_parts = allocate(expected_effective, operator_weights(scores))
        what = "allocations (budget split over operators by score)"
    else:
        expected_parts = _v2_allocations(data, scores, params, expected_effective, checks)
        what = "allocations (budget split over nodes by score, each capped by its stake)"
    checks.append(compare(what, allocations, {k.lower(): v for k, v in expected_parts.items()}))
    checks.append(
        compare(
            "leaves = previous leaves + allocations",
            parse_leaves(data),
            cumulate(previous, allocations),
        )
    )
    checks.append(
        compare("previous leaves = those of the last accepted epoch", previous, previous_accepted)
    )
    return checks


def _prober_rounds_checks(data: dict[str, Any]) -> list[Check]:
    """Version 2: every node is scored against every prober that ran in the epoch, with that
    prober's published number of rounds (so no node gets a smaller denominator)."""
    epoch_rounds = {str(p["prober"]).lower(): int(p["rounds"]) for p in data["prober_rounds"]}
    wrong = []
    for node in data["nodes"]:
        views = {str(p["prober"]).lower(): p["epoch_rounds"] for p in node["metrics"]["probers"]}
        if views != epoch_rounds:
            wrong.append(short_hex(str(node["node_id"])))
    return [
        Check(
            "each node's uptime counts every probe round of the epoch",
            f"{len(epoch_rounds)} prober(s)",
            "same" if not wrong else f"differ for {', '.join(wrong)}",
            not wrong,
        )
    ]


def _v2_allocations(
    data: dict[str, Any],
    scores: list[NodeScore],
    params: FormulaParams,
    effective: int,
    checks: list[Check],
) -> dict[str, int]:
    """The operators' parts version 2 gives; appends the per-node checks (caps and parts) and
    the declared allocated total to `checks`."""
    stakes = {str(n["node_id"]): parse_wei(n["stake"], "nodes[].stake") for n in data["nodes"]}
    caps = {node: stake_cap(stake, params.stake_cap_multiple) for node, stake in stakes.items()}
    node_parts = allocate_capped(effective, {s.node_id: s.score_ppm for s in scores}, caps)
    published_parts: dict[str, int] = {}
    published_caps: dict[str, int] = {}
    for node in data["nodes"]:
        node_id = str(node["node_id"])
        published_parts[node_id] = parse_wei(node["allocation"]["amount"], "allocation.amount")
        published_caps[node_id] = parse_wei(node["allocation"]["cap"], "allocation.cap")
    checks.append(
        compare(f"each node's cap = {params.stake_cap_multiple} x its stake", published_caps, caps)
    )
    checks.append(compare("each node's part (capped)", published_parts, node_parts))
    allocated = parse_wei(data["budget"]["allocated"], "budget.allocated")
    expected_allocated = sum(node_parts.values())
    checks.append(
        Check(
            "allocated (what the caps left stays in the pool)",
            format_nds(allocated),
            format_nds(expected_allocated),
            allocated == expected_allocated,
        )
    )
    return by_operator(node_parts, {s.node_id: s.operator for s in scores})


def formula_params(raw: dict[str, Any]) -> FormulaParams:
    fields = {k: int(v) for k, v in raw.items() if k != "weights"}
    return FormulaParams(
        weights=Weights(**{k: int(v) for k, v in raw["weights"].items()}), **fields
    )


def node_metrics(node: dict[str, Any], version: str) -> NodeMetrics:
    metrics = node["metrics"]
    previous = metrics.get("previous_smoothed_ppm")
    v2 = version != FORMULA_V1
    return NodeMetrics(
        node_id=str(node["node_id"]),
        operator=str(node["operator"]),
        active=bool(node["active"]),
        epoch_seconds=int(metrics["epoch_seconds"]),
        probers=tuple(
            ProberView(
                prober=str(p["prober"]),
                rounds=int(p["rounds"]),
                answered=int(p["answered"]),
                median_rtt_us=None if p["median_rtt_us"] is None else int(p["median_rtt_us"]),
                epoch_rounds=int(p["epoch_rounds"]) if v2 else None,
            )
            for p in metrics["probers"]
        ),
        peers_with_traffic=int(metrics["peers_with_traffic"]),
        peers_with_handshake=int(metrics["peers_with_handshake"]),
        served_bytes=parse_wei(metrics["served_bytes"], "served_bytes"),
        ignored_peers=int(metrics["ignored_peers"]),
        previous_smoothed_ppm=None if previous is None else int(previous),
        agent=(None if node["agent"] is None else str(node["agent"])) if v2 else None,
        stake=parse_wei(node["stake"], "stake") if v2 else 0,
        own_wallets=int(metrics["own_wallets"]) if v2 else 0,
    )
