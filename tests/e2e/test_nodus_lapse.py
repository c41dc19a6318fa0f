"""A subscription lapses and comes back, as the subscriber sees it, in the subscriber lab
(tests/e2e/subscriber_lab.py: real control plane, anvil, PostgreSQL, `nodus-agent run`):
`nodus up --subscribe 1` reaches beyond; anvil's clock passes the expiry (the passage of time,
nothing faked) and traffic stops within the expiry job's interval; `nodus status` says lapsed and
exits 3; `nodus renew` brings traffic back on the same interface, key and config id.

After its proof, `nodus up` pins the API and the chain RPC to the underlay (as it pins the
node's endpoint), so a tunnel the node stopped carrying does not silence `status` and `renew`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from control_plane.chain.contracts import Deployment, Web3Client
from tests.e2e.lab import sh
from tests.e2e.stack import until
from tests.e2e.subscriber_lab import SubscriberLab
from tests.e2e.test_nodus_up import key_of, pytestmark, read  # noqa: F401  (the same requirements)
from tests.support.builders import NDS, fresh_wallet
from tests.support.devchain import advance_time

EXPIRY_JOB_SECONDS = 1  # NODUS_EXPIRY_INTERVAL_SECONDS in stack.ControlPlane
DEADLINE_SECONDS = 60  # generous: the agent's long-poll and the job share two busy cores


async def test_lapse_stops_traffic_status_says_lapsed_and_renew_restores_the_same_tunnel(
    subscriber_world: SubscriberLab,
    w3: Web3Client,
    deployment: Deployment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = subscriber_world
    account = await fresh_wallet(w3, deployment, 100 * NDS)
    key, state = key_of(account), tmp_path / "state"
    interface = world.lab.name("w")
    world.lab.interfaces.append(interface)
    code, out, err = await world.nodus(
        "up", "--subscribe", "1", "--interface", interface, "--no-dns", "--json",
        key=key, state=state,
    )  # fmt: skip
    assert code == 0, out + err
    summary = json.loads(out)
    config = Path(summary["config"])
    text_before = read(config)
    assert await world.reach_beyond() == "hello from beyond"

    # Lapsed: the chain's clock passes the expiry; the tunnel stops carrying traffic.
    await advance_time(w3, 31 * 24 * 3600)
    started = time.monotonic()
    await until(lambda: _unreachable(world), DEADLINE_SECONDS, "beyond to stop answering", step=0.5)
    report(
        capsys,
        f"lapse -> beyond unreachable: {time.monotonic() - started:.2f}s "
        f"(expiry job every {EXPIRY_JOB_SECONDS}s)",
    )

    code, out, err = await world.nodus("status", "--json", key=key, state=state)
    assert code == 3, out + err
    assert "nodus renew" in err, err
    shown = json.loads(out)
    assert shown["subscription"]["active"] is False
    assert [(d["id"], d["status"]) for d in shown["devices"]] == [(summary["config_id"], "lapsed")]
    code, out, err = await world.nodus("status", key=key, state=state)
    assert code == 3, out + err
    assert "lapsed" in out, out + err

    # Renewed: the same interface, key and config carry traffic again.
    public_key = await _interface_key(world, interface)
    started = time.monotonic()
    code, out, err = await world.nodus("renew", "--months", "1", key=key, state=state)
    assert code == 0, out + err
    await until(
        lambda: _reachable(world), DEADLINE_SECONDS, "beyond to answer after renew", step=0.5
    )
    report(capsys, f"renew -> beyond reachable again: {time.monotonic() - started:.2f}s")
    assert await _interface_key(world, interface) == public_key
    assert read(config) == text_before
    code, out, err = await world.nodus("status", "--json", key=key, state=state)
    assert code == 0, out + err
    shown = json.loads(out)
    assert [(d["id"], d["status"]) for d in shown["devices"]] == [(summary["config_id"], "active")]
    assert shown["tunnel"]["interface"] == interface
    code, out, err = await world.nodus("down", key=key, state=state)
    assert code == 0, out + err


async def _reachable(world: SubscriberLab) -> bool:
    return await world.reach_beyond(seconds=2) == "hello from beyond"


async def _unreachable(world: SubscriberLab) -> bool:
    return await world.reach_beyond(seconds=2) is None


async def _interface_key(world: SubscriberLab, interface: str) -> str:
    shown = await sh("ip", "netns", "exec", world.client, "wg", "show", interface, "public-key")
    return shown.stdout.strip()


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Printed even when pytest captures output (the numbers are what the test is for)."""
    with capsys.disabled():
        print(f"\n[e2e] {line}")
