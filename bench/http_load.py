"""P1 (an unchanged agent poll next to a bare FastAPI app, both under one uvicorn worker, load
from wrk) and P2 (config issuance at 64 concurrent, onto one node and spread over many)."""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from bench.profile import Profile, cpu_seconds
from bench.report import Section
from bench.stack import Fixture, Stack, random_wg_key

WRK_CONNECTIONS = 32


@dataclass(frozen=True)
class WrkResult:
    per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise RuntimeError(f"unexpected wrk latency {value!r}")
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match.group(2)]
    return float(match.group(1)) * unit


def wrk(url: str, seconds: float, headers: dict[str, str] | None = None) -> WrkResult:
    """One wrk run: one thread (wrk itself needs a core of the two), WRK_CONNECTIONS open."""
    args = ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return WrkResult(
        float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(bad.group(1)) if bad else 0
    )


@dataclass(frozen=True)
class Target:
    label: str
    url: str
    headers: dict[str, str] | None = None


def measure_p1(section: Section, targets: list[Target], seconds: float, rounds: int) -> None:
    """Each target `rounds` times, interleaved (so a load spike hits them all alike); medians.
    The first target is the baseline."""
    if shutil.which("wrk") is None:
        section.add("Not measured: `wrk` is missing (`apt-get install wrk`; scripts/lib.sh's "
                    "ensure_debian installs it as root).")  # fmt: skip
        return
    runs: dict[str, list[WrkResult]] = {t.label: [] for t in targets}
    for target in targets:  # warm-up: first requests load code and caches
        wrk(target.url, 1, target.headers)
    for _ in range(rounds):
        for target in targets:
            runs[target.label].append(wrk(target.url, seconds, target.headers))
    base = statistics.median(r.per_second for r in runs[targets[0].label])
    rows = []
    for target in targets:
        results = runs[target.label]
        rate = statistics.median(r.per_second for r in results)
        rows.append(
            (
                target.label,
                f"{rate:,.0f}",
                f"{rate / base:.2f}",
                f"{statistics.median(r.p50_ms for r in results):.2f} ms",
                f"{statistics.median(r.p99_ms for r in results):.2f} ms",
                f"{sum(r.non_2xx for r in results):,}",
            )
        )
    section.table(("path", "req/s", "vs bare FastAPI", "p50", "p99", "non-2xx"), rows)
    section.add(
        f"wrk, 1 thread, {WRK_CONNECTIONS} connections, {seconds:g} s per run, median of "
        f"{rounds} interleaved runs; one uvicorn worker each. Target: at least 0.60 of bare.",
        "",
    )


@dataclass(frozen=True)
class IssuanceRun:
    label: str
    per_second: float
    p50_ms: float
    p99_ms: float
    statuses: Counter[int]
    server_cpu_ms: float  # the server process's CPU time per request


async def warm_up(stack: Stack, api_url: str, fixture: Fixture, concurrency: int) -> None:
    """`concurrency` authenticated reads at once, a few times, so the server's connection pool
    is full before anything is measured (a connection's first use costs its setup; a server
    that has been up a while has paid it)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, timeout=120, limits=limits) as http:
        for _ in range(3):
            responses = await asyncio.gather(
                *(
                    http.get("/v1/configs", headers=fixture.wallet(stack.settings, subscriber))
                    for subscriber in fixture.subscribers[:concurrency]
                )
            )
            for response in responses:
                response.raise_for_status()


async def issue_configs(
    stack: Stack, api_url: str, fixture: Fixture, node_ids: list[str], per_subscriber: int,
    concurrency: int, label: str, server_pid: int,
) -> IssuanceRun:  # fmt: skip
    """`per_subscriber` WireGuard configs for every subscriber, round-robin over `node_ids`,
    `concurrency` requests in flight; each request's latency as the client saw it."""
    jobs: asyncio.Queue[tuple[dict[str, str], dict[str, str]]] = asyncio.Queue()
    n = 0
    for _ in range(per_subscriber):
        for subscriber in fixture.subscribers:
            body = {
                "node_id": node_ids[n % len(node_ids)],
                "protocol": "wireguard",
                "public_key": random_wg_key(),
            }
            n += 1
            jobs.put_nowait((fixture.wallet(stack.settings, subscriber), body))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    # One connection per worker, as 64 clients would have: a shared pool leaves some of its
    # connections idle past uvicorn's keep-alive timeout (5 s) when answers are slow, and a
    # request sent on one as the server closes it fails with a ReadError.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # Built before the clock starts: each client loads a TLS context (~20 ms of this process's
    # loop; 64 of them took 1.3 s, which earlier runs counted in the elapsed time and latencies).
    clients = [
        httpx.AsyncClient(base_url=api_url, timeout=120, limits=one) for _ in range(concurrency)
    ]

    async def worker(http: httpx.AsyncClient) -> None:
        async with http:
            while not jobs.empty():
                headers, body = jobs.get_nowait()
                started = time.perf_counter()
                response = await http.post("/v1/configs", json=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1

    started, cpu_before = time.perf_counter(), cpu_seconds(server_pid)
    await asyncio.gather(*(worker(http) for http in clients))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(server_pid) - cpu_before
    latencies.sort()
    return IssuanceRun(
        label,
        len(latencies) / elapsed,
        1000 * latencies[len(latencies) // 2],
        1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        statuses,
        1000 * cpu / len(latencies),
    )


def report_p2(section: Section, runs: list[IssuanceRun], concurrency: int) -> None:
    rows = [
        (
            "today's figure (issue 13, quiet 2 cores, one node)",
            "47",
            "1,370 ms",
            "2,140 ms",
            "",
            "",
        ),
    ]
    for run in runs:
        codes = ", ".join(f"{code}: {count:,}" for code, count in sorted(run.statuses.items()))
        rows.append(
            (
                run.label,
                f"{run.per_second:,.0f}",
                f"{run.p50_ms:,.0f} ms",
                f"{run.p99_ms:,.0f} ms",
                f"{run.server_cpu_ms:.1f} ms",
                codes,
            )
        )
    section.table(("run", "configs/s", "p50", "p99", "server CPU per config", "statuses"), rows)
    section.add(
        f"POST /v1/configs (WireGuard), {concurrency} in flight from as many httpx clients (one "
        "connection each) in one Python process on the same machine, which takes CPU from the "
        "server; one uvicorn worker unless the run says `serve`'s default (a worker per core, "
        "each with its own pool and LISTEN; its CPU is the workers' sum), pools warmed first. "
        "Target on 2 "
        "quiet cores: 1,000 per second, p99 at most 50 ms.",
        "",
        "What an issuance costs: 2 statements plus BEGIN and COMMIT, 4 round trips (at "
        "cfae2b4, before issue 13's work: 15 statements counting a savepoint's two, BEGIN, "
        "COMMIT and the pool's pre-ping, 18; tests/control_plane/configs/test_issue_statements.py "
        "keeps the count). The node's revision is bumped inside the COMMIT by a deferred trigger "
        "(migration 0007), so issues onto one node no longer queue on its row lock across a "
        "round trip. `server CPU per config` is the uvicorn process's user + system time from "
        "/proc divided by the configs issued: one worker cannot issue more than 1,000 / that "
        "many per second even with a core to itself, and PostgreSQL, the 64 httpx clients and "
        "the server share the 2 cores (with whatever else runs; load average above). The "
        "profile below says where the server's share goes.",
        "",
    )


def report_profiles(section: Section, profiles: list[tuple[str, Profile]]) -> None:
    """The server's busy CPU during each run, by layer (bench/profile.py)."""
    for label, sampled in profiles:
        section.add(
            f"Where the server's busy CPU went during `{label}` (py-spy, {sampled.samples:,} "
            "samples; the innermost known layer of each stack):",
            "",
        )
        section.table(
            ("layer", "share of busy CPU"),
            [(name, f"{share:.0%}") for name, share in sampled.shares()],
        )
