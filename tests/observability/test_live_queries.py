"""Every dashboard panel's query and every alert rule's expression, evaluated by a real
VictoriaMetrics that scrapes a live control plane and a live node agent (the e2e lab: a node in a
namespace, a paid subscriber whose issued config carries a ping through the tunnel, the control
plane's jobs running). Each must parse; each panel the traffic feeds must return data."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import Lab
from tests.e2e.stack import (
    AGENT_ENV,
    ControlPlane,
    Node,
    connect_device,
    free_tcp_port,
    start_node,
    tunnel_up,
    until,
)
from tests.observability.stack_files import (
    PanelQuery,
    alert_rules,
    concrete,
    panel_queries,
)
from tests.observability.victoria import VictoriaMetrics
from tests.support.builders import fresh_wallet, subscribe

pytestmark = needs_tunnels

# Metrics this test's traffic cannot produce; a query reading one of them is exempt from the
# data check (it must still parse).
UNFED = {
    "nodus_node_health": "needs a prober's verdict on the node; no prober runs here",
    "nodus_probe_rounds": "needs probe rounds; no prober runs here",
    "nodus_node_score": "needs a scored epoch (epochs last days; tests/e2e_rewards covers them)",
    "nodus_node_score_part": "needs a scored epoch",
    "nodus_node_reward_wei": "needs a posted epoch's allocation",
    "nodus_epoch_last_posted_timestamp_seconds": "needs a posted epoch",
    "nodus_rewards_pending_root_seconds_left": "absent while no rewards root is pending",
}
METRIC_NAME = re.compile(r"\bnodus_[a-z_]+")


def unfed_reason(expr: str) -> str | None:
    for name in METRIC_NAME.findall(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base in UNFED:
            return UNFED[base]
    return None


@pytest.fixture
async def agent_metrics_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The agent's own metrics endpoint (`metrics.listen`), off its health port."""
    port = free_tcp_port()
    monkeypatch.setitem(AGENT_ENV, "NODUS_AGENT_METRICS_LISTEN", f"127.0.0.1:{port}")
    return port


@pytest.fixture
async def node(
    lab: Lab,
    control_plane: ControlPlane,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    agent_metrics_port: int,
) -> Node:
    return await start_node(lab, control_plane, settings, w3, deployment)


@pytest.fixture
async def victoria(
    tmp_path: Path, control_plane: ControlPlane, node: Node, agent_metrics_port: int
) -> AsyncIterator[VictoriaMetrics]:
    targets = {
        "control-plane": f"127.0.0.1:{control_plane.port}",
        "agent": f"127.0.0.1:{agent_metrics_port}",
    }
    service = VictoriaMetrics(tmp_path, targets)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def drive_traffic(
    lab: Lab, control_plane: ControlPlane, node: Node, w3: Web3Client, deployment: Deployment
) -> None:
    """A paid subscriber, a config issued and used, and a refused request (a 4xx)."""
    subscriber = await fresh_wallet(w3, deployment, 100 * 10**18)
    await subscribe(w3, deployment, subscriber)
    device = await connect_device(lab, control_plane, node, subscriber, 1)
    await tunnel_up(device, node)
    async with httpx.AsyncClient(base_url=control_plane.url) as http:
        assert (await http.get("/v1/nodes/not-a-node")).is_client_error


async def empty(victoria: VictoriaMetrics, queries: list[PanelQuery], node: str) -> list[str]:
    return [
        query.name + ": " + query.expr
        for query in queries
        if not await victoria.series(concrete(query.expr, {"node": node}))
    ]


async def test_every_panel_and_alert_query_runs_on_live_metrics(
    lab: Lab,
    control_plane: ControlPlane,
    node: Node,
    w3: Web3Client,
    deployment: Deployment,
    victoria: VictoriaMetrics,
) -> None:
    await drive_traffic(lab, control_plane, node, w3, deployment)

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

    queries = panel_queries()
    fed = [query for query in queries if unfed_reason(query.expr) is None]
    assert len(fed) > len(queries) // 2  # the exemptions stay a short list
    # Rates need two scrapes inside their window, and the jobs their next run: poll a while.
    missing: list[str] = []

    async def all_fed() -> bool:
        nonlocal missing
        missing = await empty(victoria, fed, node.node_id)
        return not missing

    with contextlib.suppress(AssertionError):
        await until(all_fed, 45, "every fed panel to return data", step=2)
    assert not down + missing, "\n".join(["without data:", *down, *missing])
    for query in queries:  # the exempt ones parse too
        assert (await victoria.query(concrete(query.expr, {"node": node.node_id})))["status"] == (
            "success"
        ), query.name
