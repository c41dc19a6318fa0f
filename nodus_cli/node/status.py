"""`nodus node status`: one node as the chain, the control plane and the probers see it, and the
operator's rewards (claimable now, and pending in a root's challenge window)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from nodus_cli.node.inputs import NodeIdArgument
from nodus_cli.node.registry import ChainNode, read_node
from nodus_cli.rewards.api import Rewards, fetch_rewards
from nodus_cli.rewards.claim import pending_json, pending_row
from nodus_cli.rewards.pending import PendingReward, pending_reward
from nodus_cli.support.chain import connect, run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    CliError,
    console,
    err_console,
    format_nds,
    format_time,
    hex0x,
)
from nodus_cli.support.session import ApiNotFound, ApiSession, JsonObject

SCORES_SHOWN = 3


@shared_options("rpc_url", "deployments_dir", "api_url", "as_json")
def status(node_id: NodeIdArgument, *, options: Options) -> None:
    """Show a node: on-chain state (status, stake, unbonding), the control plane's record, the
    latest scores with their reasons, the probers' health verdicts with reasons and fixes, and
    the operator's claimable and pending rewards. Public: no key needed.

    Example: nodus node status 0x6e6f…a1 --json
    """
    shown = hex0x(node_id)

    async def main() -> dict[str, Any]:
        chain = await connect(options.rpc_url, options.deployments_dir)
        node = await read_node(chain, node_id)
        if node.status == "none":
            raise CliError(f"node {shown} is not registered in NodeRegistry", exit_code=2)
        now = await chain.now()
        async with ApiSession.open(options.api_url, None) as api:
            record = await _public(api, f"/v1/nodes/{shown}")
            scores = await _public(api, f"/v1/nodes/{shown}/scores", limit=SCORES_SHOWN)
            health = await _public(api, f"/v1/nodes/{shown}/health", limit=5)
        rewards = await fetch_rewards(options.api_url, node.operator)
        pending: PendingReward | None = None
        try:  # the rest of the status stands without it
            pending = await pending_reward(chain, options.api_url, node.operator)
        except CliError as exc:
            err_console.print(f"[yellow]warning:[/yellow] pending rewards: {escape(exc.message)}")
        return {
            "node": node,
            "now": now,
            "api": record,
            "scores": (scores or {}).get("items", []),
            "health": health,
            "rewards": rewards,
            "pending": pending,
        }

    found = run(main)
    if options.as_json:
        console.print_json(data=_as_json(found))
        return
    _print(found)


async def _public(api: ApiSession, path: str, **params: int) -> JsonObject | None:
    """A public GET, with a 404 as None."""
    try:
        return await api.get(path, params=params or None, auth=False)
    except ApiNotFound:
        return None


def _as_json(found: dict[str, Any]) -> dict[str, Any]:
    node: ChainNode = found["node"]
    rewards: Rewards | None = found["rewards"]
    return {
        "node_id": node.shown_id,
        "chain": {
            "operator": node.operator,
            "agent": node.agent,
            "status": node.status,
            "active": node.active,
            "stake": str(node.stake),
            "unbonding_end": node.unbonding_end or None,
        },
        "api": found["api"],
        "scores": found["scores"],
        "health": found["health"],
        "rewards": {
            "operator": node.operator,
            "cumulative": str(rewards.cumulative if rewards else 0),
            "claimed": str(rewards.claimed if rewards else 0),
            "claimable": str(rewards.claimable if rewards else 0),
            "pending": pending_json(found["pending"]),
        },
    }


def _print(found: dict[str, Any]) -> None:
    node: ChainNode = found["node"]
    now: int = found["now"]
    table = Table(title=f"node {node.shown_id}", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    state = node.status + ("" if node.active or node.status != "active" else " (below min stake)")
    table.add_row("on-chain", state)
    table.add_row("operator", node.operator)
    table.add_row("agent", node.agent)
    table.add_row("stake", format_nds(node.stake))
    if node.status == "exiting":
        table.add_row("unbonding until", format_time(node.unbonding_end, now))
    _api_rows(table, found["api"])
    _health_rows(table, found["health"])
    _score_rows(table, found["scores"])
    _reward_rows(table, found["rewards"], found["pending"])
    console.print(table)


def _api_rows(table: Table, record: JsonObject | None) -> None:
    if record is None:
        table.add_row("control plane", "[yellow]not registered[/yellow]: nodus node register ...")
        return
    online = "[green]online[/green]" if record.get("online") else "[red]offline[/red]"
    table.add_row(
        "control plane",
        escape(
            f"{record.get('endpoint')} {record.get('country')} "
            f"{','.join(record.get('protocols') or [])}"
        )
        + f", {online}",
    )


def _health_rows(table: Table, health: JsonObject | None) -> None:
    if health is None:
        table.add_row("health", "unknown (the control plane has no health view of it)")
        return
    summary = health.get("summary") or {}
    color = {"up": "green", "down": "red"}.get(str(summary.get("verdict")), "yellow")
    table.add_row(
        "health",
        f"[{color}]{escape(str(summary.get('verdict')))}[/{color}] "
        f"({escape(str(summary.get('reason')))}): {escape(str(summary.get('fix')))}",
    )
    for probe in (health.get("rounds") or [])[:3]:
        table.add_row(
            "  probe",
            escape(
                f"{probe.get('round_at')} {probe.get('verdict')} ({probe.get('reason')}) "
                f"by {probe.get('prober')}"
            ),
        )


def _score_rows(table: Table, scores: list[JsonObject]) -> None:
    if not scores:
        table.add_row("scores", "not scored yet")
        return
    for item in scores:
        reasons = "; ".join(str(r) for r in item.get("reasons") or []) or "-"
        table.add_row(
            f"score (epoch {item.get('epoch')})",
            escape(f"{float(item.get('score', 0)):.3f}: {reasons}"),
        )


def _reward_rows(table: Table, rewards: Rewards | None, pending: PendingReward | None) -> None:
    if rewards is None:
        table.add_row("claimable", "nothing yet (no accepted root names the operator)")
    else:
        table.add_row(
            "claimable",
            f"[green]{format_nds(rewards.claimable)}[/green] of {format_nds(rewards.cumulative)} "
            f"earned (epoch {rewards.epoch})",
        )
    if pending is not None:
        table.add_row(*pending_row(pending))
