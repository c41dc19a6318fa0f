"""The bytes of an epoch are a contract with every operator who recomputes them (`nodus rewards
verify`): a fixed input that walks every branch of scoring, allocation and the tree must keep
giving the data hash, root and proofs recorded before the formula was made faster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eth_utils.crypto import keccak

from control_plane.rewards.formula.epoch import compute_epoch
from control_plane.rewards.formula.scoring import (
    FORMULA_V1,
    NodeMetrics,
    ProberView,
    score_node,
)

NDS = 10**18
PROBERS = ("0x" + "a1" * 20, "0x" + "B2" * 20, "0x" + "c3" * 20)


def _views(i: int) -> tuple[ProberView, ...]:
    """0 to 3 probers; some nodes probed in fewer rounds than the epoch had, some never
    answering, some answering without a round trip."""
    count = i % 4
    views = []
    for j, prober in enumerate(PROBERS[:count]):
        epoch_rounds = 12 if (i + j) % 5 else None
        rounds = 12 - (i * 7 + j) % 6 if i % 3 else 12
        answered = 0 if (i + j) % 11 == 0 else rounds - (i + 3 * j) % (rounds + 1)
        rtt = None if answered == 0 or (i + j) % 13 == 0 else 5_000 + (i * 7_919 + j) % 1_200_000
        views.append(ProberView(prober, rounds, answered, rtt, epoch_rounds=epoch_rounds))
    return tuple(views)


def pinned_metrics(count: int = 300) -> list[NodeMetrics]:
    metrics = []
    for i in range(count):
        traffic = i % 9
        handshake = min(traffic, i % 4)
        operator = "0x" + f"{(i % 97) + 1:040x}"
        metrics.append(
            NodeMetrics(
                node_id="0x" + f"{i * 2_654_435_761 % 2**256:064x}",
                operator=operator.upper().replace("0X", "0x") if i % 5 == 0 else operator,
                active=i % 17 != 0,
                epoch_seconds=3_600,
                probers=_views(i),
                peers_with_traffic=traffic,
                peers_with_handshake=handshake,
                served_bytes=0 if handshake == 0 else (i**3 * 1_000_003) % (10**13),
                ignored_peers=i % 3 if i % 6 else 0,
                previous_smoothed_ppm=None if i % 4 == 1 else (i * 104_729) % 1_000_001,
                agent=None if i % 10 == 3 else "0x" + f"{i + 9_000:040x}",
                stake=(i % 8) * NDS // 3,
                own_wallets=i % 2 if i % 7 == 0 else 0,
            )
        )
    return metrics


def test_a_fixed_epoch_keeps_its_bytes_root_and_proofs() -> None:
    metrics = pinned_metrics()
    end = datetime(2026, 3, 1, tzinfo=UTC)
    result = compute_epoch(
        chain_id=31337,
        epoch=7,
        start=end - timedelta(hours=1),
        end=end,
        requested_budget=12_345 * NDS + 6_789,
        total_funded=10**6 * NDS,
        previous_cumulative={"0x" + f"{k * 3 + 1:040x}": k * NDS + 1 for k in range(60)},
        metrics=metrics,
        probe_rounds=36,
    )
    tree = result.tree
    assert tree is not None
    proofs = b"".join(
        bytes.fromhex(address[2:]) + b"".join(tree.proofs[address])
        for address in sorted(tree.proofs)
    )
    assert len(result.data) == 506_548
    assert result.data_hash == (
        "0x36ab188b8df00165266013abb5c02cd1e00546d56af5f397388773bbe2f46807"
    )
    assert result.root == "0xe020e18879de631f75dd2698936576033d981deda6dcbae73220cdccfd6400a5"
    assert len(tree.proofs) == 124
    assert "0x" + keccak(proofs).hex() == (
        "0xea23369a7bc2d4391f7ce464520bb8af25827742b9c7a78e3e4fff3b3f9e0a21"
    )


def test_version_1_scores_keep_their_reasons() -> None:
    scores = [score_node(m, version=FORMULA_V1) for m in pinned_metrics()]
    text = "\n".join(
        f"{s.node_id} {s.raw_ppm} {s.smoothed_ppm} {s.score_ppm} " + "|".join(s.reasons)
        for s in scores
    )
    assert "0x" + keccak(text.encode()).hex() == (
        "0x13fb2fae62347c9cb2ad1ceb49e105712e3989cc17f506c8b9b1ae958da9406b"
    )
