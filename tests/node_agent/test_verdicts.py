"""The agent's verdict: the most serious problem wins, each with a reason code and a fix."""

from __future__ import annotations

from node_agent.verdicts import FIXES, Facts, judge


def test_every_reason_has_a_level_and_a_fix() -> None:
    for reason, (level, fix) in FIXES.items():
        assert level in ("ok", "warn", "fail"), reason
        assert fix, reason


def test_the_most_serious_problem_wins() -> None:
    serving = Facts(applied_revision=3, peers=2, recently_shaken=1)
    assert judge(serving).reason == "ok"
    assert judge(Facts(applied_revision=None)).reason == "starting"
    assert judge(Facts(applied_revision=3, peers=0)).reason == "no_peers"
    assert judge(Facts(applied_revision=3, peers=2, recently_shaken=0)).reason == "no_handshakes"

    unreachable = Facts(applied_revision=3, peers=2, unreachable="unreachable: refused")
    assert (judge(unreachable).level, judge(unreachable).reason) == (
        "warn",
        "control_plane_unreachable",
    )
    refused = Facts(applied_revision=3, peers=2, refused="refused: 403 not active")
    assert judge(refused).reason == "control_plane_refused"
    nat = Facts(applied_revision=3, peers=2, unreachable="x", network={"nat_missing": "none"})
    assert (judge(nat).level, judge(nat).reason) == ("fail", "nat_missing")
    failed = Facts(applied_revision=3, apply_error="wireguard: exit 1", network=nat.network)
    assert judge(failed).reason == "apply_failed"
    gone = Facts(apply_error="wg show nodus0 dump ...: Unable to access interface: No such device")
    assert judge(gone).reason == "interface_missing"
    missing = Facts(applied_revision=3, network={"interface_missing": "nodus0 does not exist"})
    assert judge(missing).detail == "nodus0 does not exist"
