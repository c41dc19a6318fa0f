"""`nodus nodes`: the API's node list with each node's latest score, and the latency this
client measures itself.

Latency is the time a TCP handshake to the node's endpoint (host and port) takes to be answered,
by a SYN-ACK or by a refusal (an RST: WireGuard listens on UDP, so its port usually refuses, and
the refusal is as much a round trip as an accept); the best of `LATENCY_TRIES`. A host that does
not answer within `LATENCY_TIMEOUT_S` (dropped, filtered, unreachable) has no latency. No UDP
packet is sent, so nothing here looks like a tunnel handshake.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final

import typer

from nodus_cli.support.chain import run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import console, err_console
from nodus_cli.support.session import ApiSession, JsonObject

LATENCY_TRIES: Final = 3
LATENCY_TIMEOUT_S: Final = 1.0
PAGE: Final = 100
MAX_NODES: Final = 1_000


class Protocol(StrEnum):
    WIREGUARD = "wireguard"
    OPENVPN = "openvpn"


class Sort(StrEnum):
    SCORE = "score"
    LATENCY = "latency"


def parse_country(text: str) -> str:
    value = text.strip()
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise typer.BadParameter(f"{text!r} is not a country code (two letters, such as DE)")
    return value.upper()


CountryOption = Annotated[
    str | None,
    typer.Option(
        "--country", parser=parse_country, metavar="CC", help="Only nodes in this country."
    ),
]
ProtocolOption = Annotated[
    Protocol | None, typer.Option("--protocol", help="Only nodes serving this protocol.")
]
SortOption = Annotated[
    Sort,
    typer.Option(
        "--sort", help="score: best latest score first (then latency); latency: fastest first."
    ),
]


@dataclass(frozen=True, slots=True)
class NodeView:
    node: JsonObject
    latency_ms: float | None

    @property
    def score(self) -> float | None:
        value = self.node.get("score")
        return float(value) if isinstance(value, (int, float)) else None

    def as_json(self) -> dict[str, Any]:
        return {**self.node, "latency_ms": self.latency_ms}


def split_endpoint(endpoint: str) -> tuple[str, int] | None:
    """ "host:port" or "[v6]:port" -> (host, port); None when it is neither."""
    host, _, port = endpoint.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65_536:
        return None
    return host, int(port)


async def tcp_round_trip(host: str, port: int) -> float | None:
    """Milliseconds until the endpoint answers a TCP handshake (accept or refusal); None if
    nothing answers."""
    best: float | None = None
    for _ in range(LATENCY_TRIES):
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), LATENCY_TIMEOUT_S
            )
        except ConnectionRefusedError:
            pass  # an RST: the host answered
        except (OSError, TimeoutError):
            continue
        else:
            writer.close()
        elapsed = (time.perf_counter() - started) * 1000
        best = elapsed if best is None else min(best, elapsed)
    return best


async def list_nodes(
    api: ApiSession, country: str | None, protocol: Protocol | None, sort: Sort
) -> list[NodeView]:
    """Every live node (all pages, up to MAX_NODES) with its measured latency, sorted. (`nodus
    up` picks the first.)"""
    params: dict[str, Any] = {"limit": PAGE, "sort": "score" if sort is Sort.SCORE else "created"}
    if country:
        params["country"] = country
    if protocol:
        params["protocol"] = protocol.value
    nodes: list[JsonObject] = []
    while len(nodes) < MAX_NODES:
        page = await api.get("/v1/nodes", params=params, auth=False)
        nodes.extend(n for n in page.get("items", []) if isinstance(n, dict))
        cursor = page.get("next_cursor")
        if not cursor:
            break
        params["cursor"] = cursor

    async def measure(node: JsonObject) -> NodeView:
        target = split_endpoint(str(node.get("endpoint", "")))
        latency = await tcp_round_trip(*target) if target else None
        return NodeView(node, None if latency is None else round(latency, 2))

    views = list(await asyncio.gather(*(measure(node) for node in nodes)))
    never = float("inf")
    if sort is Sort.SCORE:
        views.sort(
            key=lambda v: (-(v.score if v.score is not None else -1.0), v.latency_ms or never)
        )
    else:
        views.sort(
            key=lambda v: (v.latency_ms if v.latency_ms is not None else never, -(v.score or 0))
        )
    return views


@shared_options("api_url", "as_json")
def nodes(
    country: CountryOption = None,
    protocol: ProtocolOption = None,
    sort: SortOption = Sort.SCORE,
    *,
    options: Options,
) -> None:
    """List the VPN nodes with their latest score and the latency measured from here.

    Each node: country, protocols, online, the latest score (from the probers' measurements;
    '-' until first scored) and the latency this computer measures (a TCP handshake to the
    node's endpoint, answered by an accept or a refusal; '-' if nothing answers in 1 s).

    Examples:

        nodus nodes

        nodus nodes --country DE --protocol wireguard --sort latency

        nodus nodes --json
    """

    async def main() -> None:
        async with ApiSession.open(options.api_url, None) as api:
            with err_console.status("listing nodes and measuring their latency…"):
                views = await list_nodes(api, country, protocol, sort)
        if options.as_json:
            console.print_json(json.dumps({"items": [v.as_json() for v in views]}))
            return
        if not views:
            console.print("no node matches")
            return
        # Plain text (markup off): the API's values are shown, never interpreted.
        console.print(
            f"{'CC':<3} {'PROTOCOLS':<18} {'ONLINE':<7} {'SCORE':>6} {'LATENCY':>10}  NODE",
            markup=False,
        )
        for v in views:
            node = v.node
            score = "-" if v.score is None else f"{v.score:.3f}"
            latency = "-" if v.latency_ms is None else f"{v.latency_ms:.1f} ms"
            protocols = ",".join(str(p) for p in node.get("protocols", []))
            online = "yes" if node.get("online") else "no"
            console.print(
                f"{node.get('country', '')!s:<3} {protocols:<18} {online:<7} {score:>6} "
                f"{latency:>10}  {node.get('id', '')}",
                markup=False,
            )

    run(main)
