"""Which node: `--node` when given, else the first of `nodus nodes`' order (best latest score,
then the latency this host measures: subscriber/nodes.py)."""

from __future__ import annotations

from typing import Any

from nodus_cli.subscriber.nodes import NodeView, Protocol, Sort, list_nodes, split_endpoint
from nodus_cli.support.exits import CliError
from nodus_cli.support.session import ApiSession


def host_of(endpoint: str) -> str:
    split = split_endpoint(endpoint)
    if split is None:
        raise CliError(f"the node's endpoint {endpoint!r} is not host:port")
    return split[0]


async def best_node(
    session: ApiSession, country: str | None, protocol: str
) -> tuple[dict[str, Any], float | None]:
    views: list[NodeView] = await list_nodes(session, country, Protocol(protocol), Sort.SCORE)
    if not views:
        raise CliError(
            "no node matches", next_step="try another --country or --protocol (`nodus nodes`)"
        )
    return dict(views[0].node), views[0].latency_ms
