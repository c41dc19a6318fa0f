"""Which node: the one asked for, else the best scored (unscored last), ties broken by the
latency this host measures itself (one ping each, in parallel)."""

from __future__ import annotations

import asyncio
import re
import shutil
from typing import Any, Final

from nodus_cli.support.output import CliError
from nodus_cli.tunnel.proof import resolve

PING_WAIT_S: Final = 1
_RTT = re.compile(r"time=([0-9.]+) ms")


async def latency_ms(host: str) -> float | None:
    if shutil.which("ping") is None:
        return None
    try:
        address = sorted(resolve(host))[0]
    except OSError:
        return None
    process = await asyncio.create_subprocess_exec(
        "ping", "-n", "-c", "1", "-W", str(PING_WAIT_S), address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await process.communicate()
    match = _RTT.search(out.decode())
    return float(match.group(1)) if match else None


def host_of(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


async def best_node(nodes: list[dict[str, Any]]) -> tuple[dict[str, Any], float | None]:
    if not nodes:
        raise CliError("no node matches: try another --country or --protocol (`nodus nodes`)")
    latencies = await asyncio.gather(*(latency_ms(host_of(n["endpoint"])) for n in nodes))

    def rank(pair: tuple[dict[str, Any], float | None]) -> tuple[float, float]:
        node, latency = pair
        score = node.get("score")
        return (-(score if score is not None else -1.0), latency if latency is not None else 1e9)

    return min(zip(nodes, latencies, strict=True), key=rank)
