"""Every dashboard panel's query and every alert rule's expression, evaluated by a real
VictoriaMetrics that scrapes a live control plane and a live node agent: the subscriber lab of
the e2e tests (tests/e2e/subscriber_lab.py), where the control plane's own prober measures the
node on its endpoint, a subscriber pays and connects with `nodus up` and moves traffic through
the node, and the control plane's reward jobs (with the oracle's key and short epochs) score an
epoch from those probes and post its root, pending in its challenge window. Each query must
parse and return data, and what an operator reads on the dashboards agrees with the API: the
node probed up (`ok`), its score and reward, the pending root ours. Once the window has passed on
the chain, the control plane accepts the root itself and the economy shows it claimable."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.settings import Settings
from tests.control_plane.chain.support import ORACLE
from tests.e2e.conftest import needs_nft_and_openvpn, needs_tunnels
from tests.e2e.netns_forward import Forwarders
from tests.e2e.stack import AGENT_ENV, free_tcp_port, probing, until
from tests.e2e.subscriber_lab import NODE, SubscriberLab
from tests.observability.stack_files import PanelQuery, alert_rules, concrete, panel_queries
from tests.observability.victoria import VictoriaMetrics
from tests.support.builders import NDS, fresh_wallet
from tests.support.devchain import advance_time

pytestmark = [needs_tunnels, needs_nft_and_openvpn]

# The control plane's reward jobs, as a deployment with the oracle's key runs them, on short
# intervals. The first epoch is due as soon as the node has been probed; no other is proposed
# while its root is pending, and a short epoch has the next one proposed right after it is
# accepted, so a root is pending nearly all the time.
REWARD_JOBS = {
    "NODUS_ORACLE_PRIVATE_KEY": ORACLE.key.hex(),
    "NODUS_EPOCH_SECONDS": "30",
    "NODUS_REWARD_EPOCH_INTERVAL_SECONDS": "1",
    "NODUS_REWARD_ACCEPT_INTERVAL_SECONDS": "1",
    "NODUS_TX_SEND_INTERVAL_SECONDS": "1",
    "NODUS_TX_POLL_SECONDS": "0.1",
}
SCORE_PARTS = {"uptime", "handshake", "latency", "traffic"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The lab's node lives on a private address: this deployment says it probes it."""
    return probing(settings, allow_private=True)


@pytest.fixture(autouse=True)
def reward_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the lab starts its control plane (autouse fixtures come first), which inherits
    this environment."""
    for name, value in REWARD_JOBS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def agent_metrics_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The agent's own metrics endpoint (`metrics.listen`), off its probe port, on the node
    namespace's loopback (set before the lab starts the agent)."""
    port = free_tcp_port()
    monkeypatch.setitem(AGENT_ENV, "NODUS_AGENT_METRICS_LISTEN", f"127.0.0.1:{port}")
    return port


@pytest.fixture
def agent_metrics(subscriber_world: SubscriberLab, agent_metrics_port: int) -> Iterator[str]:
    """The agent's metrics endpoint forwarded to this host's loopback, where the scraper runs."""
    forwarders = Forwarders()
    try:
        forwarders.add(
            (None, "127.0.0.1", agent_metrics_port),
            (subscriber_world.node, "127.0.0.1", agent_metrics_port),
        )
        yield f"127.0.0.1:{agent_metrics_port}"
    finally:
        forwarders.close()


@pytest.fixture
async def victoria(
    tmp_path: Path, subscriber_world: SubscriberLab, agent_metrics: str
) -> AsyncIterator[VictoriaMetrics]:
    targets = {
        "control-plane": subscriber_world.control_plane.url.removeprefix("http://"),
        "agent": agent_metrics,
    }
    service = VictoriaMetrics(tmp_path, targets)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def drive_traffic(
    world: SubscriberLab, w3: Web3Client, deployment: Deployment, state: Path
) -> None:
    """A subscriber pays and connects with `nodus up`, reaches the host beyond the node through
    the tunnel; and a refused request (a 4xx)."""
    subscriber = await fresh_wallet(w3, deployment, 100 * NDS)
    interface = world.lab.name("w")
    world.lab.interfaces.append(interface)
    code, out, err = await world.nodus(
        "up", "--subscribe", "1", "--interface", interface, "--no-dns", "--json",
        key=str(subscriber.key.hex()), state=state,
    )  # fmt: skip
    assert code == 0, out + err
    assert json.loads(out)["seen_as"] == NODE
    assert await world.reach_beyond() == "hello from beyond"
    async with httpx.AsyncClient(base_url=world.control_plane.url) as http:
        assert (await http.get("/v1/nodes/not-a-node")).is_client_error


async def empty(victoria: VictoriaMetrics, queries: list[PanelQuery], node: str) -> list[str]:
    return [
        query.name + ": " + query.expr
        for query in queries
        if not await victoria.series(concrete(query.expr, {"node": node}))
    ]


async def values(victoria: VictoriaMetrics, expr: str) -> dict[str, float]:
    """Each series of an instant query, by its labels (`k=v,...`), and its value."""
    return {
        ",".join(f"{k}={v}" for k, v in sorted(series["metric"].items())): float(series["value"][1])
        for series in await victoria.series(expr)
    }


async def one(victoria: VictoriaMetrics, expr: str) -> float | None:
    found = list((await values(victoria, expr)).values())
    assert len(found) <= 1, (expr, found)
    return found[0] if found else None


async def api(world: SubscriberLab, path: str) -> Any:
    async with httpx.AsyncClient(base_url=world.control_plane.url, timeout=10) as http:
        response = await http.get(path)
        assert response.status_code == 200, (path, response.text)
        return response.json()


async def operator_view_disagreements(
    victoria: VictoriaMetrics, world: SubscriberLab, challenge_seconds: int
) -> list[str]:
    """What the node operator and economy dashboards show that the API (or what happened)
    contradicts: the node's latest verdict, its score and breakdown, its reward, the pending
    root. Empty when they agree."""
    node = world.node_id
    wrong: list[str] = []
    health = (await api(world, f"/v1/nodes/{node}/health"))["summary"]
    latest_verdict = await values(
        victoria, f'max by (verdict, reason) (nodus_node_health{{node="{node}"}}) == 1'
    )
    if (health["verdict"], health["reason"]) != ("up", "ok") or set(latest_verdict) != {
        f"reason={health['reason']},verdict={health['verdict']}"
    }:
        wrong.append(f"health: API {health}, dashboard {latest_verdict}")

    (latest, *_) = (await api(world, f"/v1/nodes/{node}/scores?limit=1"))["items"]
    score = await one(victoria, f'nodus_node_score{{node="{node}"}}')
    if score is None or score <= 0 or score != pytest.approx(latest["score"], abs=1e-6):
        wrong.append(f"score: API {latest['score']} (epoch {latest['epoch']}), dashboard {score}")
    parts = await values(victoria, f'max by (part) (nodus_node_score_part{{node="{node}"}})')
    api_parts = {
        f"part={name}": part["value_ppm"] / 1_000_000
        for name, part in latest["breakdown"].items()
        if isinstance(part, dict) and "value_ppm" in part
    }
    if set(parts) != {f"part={name}" for name in SCORE_PARTS} or parts != pytest.approx(api_parts):
        wrong.append(f"score parts: API {api_parts}, dashboard {parts}")

    epoch = await api(world, f"/v1/epochs/{latest['epoch']}")
    operator = world.operator.operator.address.lower()
    allocated = sum(
        int(item["amount"]) for item in epoch["allocations"] if item["operator"].lower() == operator
    )
    reward = await one(victoria, f'nodus_node_reward_wei{{node="{node}"}}')
    if reward is None or reward <= 0 or reward != pytest.approx(allocated, rel=1e-9):
        wrong.append(f"reward: API {allocated} (epoch {epoch['epoch']}), dashboard {reward}")

    left = await one(victoria, "max(nodus_rewards_pending_root_seconds_left)")
    if left is None or not 0 < left <= challenge_seconds:
        wrong.append(f"pending root: {left} s left of a {challenge_seconds} s window")
    if await one(victoria, "max(nodus_rewards_pending_root_verified)") != 1:
        wrong.append("pending root: not verified as ours")
    return wrong


async def test_every_panel_and_alert_query_returns_live_data(
    subscriber_world: SubscriberLab,
    w3: Web3Client,
    deployment: Deployment,
    victoria: VictoriaMetrics,
    tmp_path: Path,
) -> None:
    world = subscriber_world
    await drive_traffic(world, w3, deployment, tmp_path / "subscriber")

    jobs = {"control-plane", "agent"}
    up: set[str] = set()

    async def both_targets_up() -> bool:
        nonlocal up
        up = {series["metric"]["job"] for series in await victoria.series("up == 1")}
        return up == jobs

    # One message for everything missing (a target down, panels without data), not the first.
    with contextlib.suppress(AssertionError):
        await until(both_targets_up, 30, "VictoriaMetrics to scrape both targets", step=0.5)
    down = [f"scrape target {job} is not up" for job in sorted(jobs - up)]

    for rule in alert_rules():
        answer = await victoria.query(concrete(rule.expr, {}))
        assert answer["status"] == "success", (rule.name, answer)

    # Rates need two scrapes inside their window, the first epoch its probes, its proposal
    # mined and mirrored: poll a while.
    queries = panel_queries()
    missing = ["no query was evaluated"]

    async def all_fed() -> bool:
        nonlocal missing
        missing = await empty(victoria, queries, world.node_id)
        return not missing

    with contextlib.suppress(AssertionError):
        await until(all_fed, 90, "every panel to return data", step=2)
    assert not down + missing, "\n".join(["without data:", *down, *missing])

    # What the operator reads agrees with the API. Polled: a scrape may be a second behind.
    distributor = contract(w3, deployment, "RewardDistributor")
    challenge_seconds = int(await distributor.functions.challengePeriod().call())
    wrong = ["the dashboards were never compared with the API"]

    async def agree() -> bool:
        nonlocal wrong
        wrong = await operator_view_disagreements(victoria, world, challenge_seconds)
        return not wrong

    with contextlib.suppress(AssertionError):
        await until(agree, 20, "the dashboards to agree with the API", step=1)
    assert not wrong, "\n".join(wrong)
    # Our own root is pending: the alert about an unverified root stays quiet.
    (unverified,) = [rule for rule in alert_rules() if rule.name == "NodusRootPendingUnverified"]
    assert await victoria.series(concrete(unverified.expr, {})) == []

    # The window passes on the chain (anvil's clock moved, as time would): the control plane
    # accepts the root by itself, and the economy shows it accepted and claimable.
    await advance_time(w3, challenge_seconds)

    async def accepted_and_claimable() -> bool:
        """Every accepted epoch mirrored; the newest one's cumulative total, nothing claimed
        yet, all claimable."""
        epoch = int(await distributor.functions.currentEpoch().call())
        if epoch == 0:
            return False
        accepted = await api(world, f"/v1/epochs/{epoch}")
        claimable = await one(victoria, "max(nodus_rewards_claimable_wei)")
        if claimable is None or accepted["status"] != "accepted":
            return False
        total = int(accepted["chain"]["total_cumulative"])
        mirrored = await one(victoria, 'max(nodus_epochs{state="accepted"})')
        return mirrored == epoch and total > 0 and claimable == pytest.approx(total, rel=1e-9)

    await until(accepted_and_claimable, 60, "the root accepted and all of it claimable", step=1)
