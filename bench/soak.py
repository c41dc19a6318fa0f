"""P8 and R9: soaks against one control plane (one uvicorn worker) on the bench stack.

P8: every seeded node's agent parks a long-poll (`GET /v1/agent/peers?since=...&wait=60`,
asking for diffs, re-polling as soon as one answers), while configs are issued at a fixed
rate (1,000 a minute) spread over those nodes, for `--soak-minutes`. R9: issuance alone at half
the peak P2 measured, for as long. Both report errors, the issuance latency (p50, p99) and the
server's resident memory from its first sample after the ramp to the end.

The nodes are seeded straight into the database: the control plane's rows and the indexer's
mirror of NodeRegistry (Active, with an agent key), as the indexer would write them for nodes
registered on-chain; each agent's token is minted as agent login issues it (the principal with
the node and its agent key, `tests.support.builders.node_headers`), because 10,000 on-chain
registrations and sign-ins would take longer than the soak. Subscribers are seeded the same way
(the mirror's expiry, which issuance reads). The long-polls are raw HTTP/1.1 on one asyncio
loop, one keep-alive connection per agent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import resource
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import http_load, profile
from bench.profile import cpu_seconds
from bench.report import Section
from bench.stack import Stack, random_wg_key
from control_plane.agent.feed import asyncpg_dsn
from control_plane.gc_policy import take_over_full_collections
from control_plane.tunnel.addresses import default_pools
from tests.support.builders import agent_of, node_headers, wallet_headers

LONG_POLL_SECONDS = 60
RSS_SAMPLE_SECONDS = 5.0
# Agents connecting and taking their first set at once during the ramp. All 10,000 at once
# queue on the server's 30 pooled database connections (a first poll checks the token against
# the chain mirror and reads the set) past the 10 s pool timeout: 503s and retries (a herd of
# reconnecting agents meets the same; they retry with backoff).
RAMP_AGENTS = 50


def raise_fd_limit() -> int:
    """The soft limit on open files raised to the hard one (servers started after inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Seeded:
    node_ids: list[str]
    node_tokens: list[str]
    wallets: list[dict[str, str]]  # request headers of paying subscribers


async def seed(stack: Stack, nodes: int, subscribers: int) -> Seeded:
    """`nodes` WireGuard nodes (rows here and in the chain mirror, Active) and `subscribers`
    paid for 30 days, in the mirror."""
    node_ids = ["0x" + secrets.token_hex(32) for _ in range(nodes)]
    operator = "0x" + secrets.token_hex(20)
    agents = [agent_of(node_id).address.lower() for node_id in node_ids]
    addresses = ["0x" + secrets.token_hex(20) for _ in range(subscribers)]
    connection = await asyncpg.connect(asyncpg_dsn(stack.settings.database_url))
    try:
        async with connection.transaction():
            await connection.executemany(
                "INSERT INTO nodes (id, operator, protocols, endpoint, country, "
                "wireguard_public_key, ipv4_pool, ipv6_pool, revision) "
                "VALUES ($1, $2, ARRAY['wireguard'], $3, 'DE', $4, $5::cidr, $6::cidr, 0)",
                [
                    (node_id, operator, f"10.{i // 250 % 250}.{i % 250}.1:51820",
                     random_wg_key(), *default_pools(node_id))
                    for i, node_id in enumerate(node_ids)
                ],
            )  # fmt: skip
            await connection.executemany(
                "INSERT INTO chain_nodes (node_id, operator, agent, stake, status, active, "
                "updated_block) VALUES ($1, $2, $3, 100000000000000000000, 'active', true, 0)",
                [
                    (node_id, operator, agent)
                    for node_id, agent in zip(node_ids, agents, strict=True)
                ],
            )
            expires = datetime.now(UTC) + timedelta(days=30)
            await connection.executemany(
                "INSERT INTO subscribers (address, expires_at) VALUES ($1, $2)",
                [(address, expires) for address in addresses],
            )
            # And the payment behind each expiry: the indexer re-reads from the chain (and
            # lowers) an expiry that no indexed payment confirms after two minutes.
            await connection.executemany(
                "INSERT INTO payments (chain_id, tx_hash, log_index, block_number, block_hash, "
                "subscriber, payer, months, amount, expires_at) "
                "VALUES ($1, $2, 0, 1, $3, $4, $4, 1, 0, $5)",
                [
                    (stack.settings.chain_id, "0x" + secrets.token_hex(32), "0x" + "00" * 32,
                     address, expires)
                    for address in addresses
                ],
            )  # fmt: skip
    finally:
        await connection.close()
    tokens = [
        node_headers(stack.settings, node_id)["authorization"].removeprefix("Bearer ")
        for node_id in node_ids
    ]
    wallets = [wallet_headers(stack.settings, address) for address in addresses]
    return Seeded(node_ids, tokens, wallets)


@dataclass
class PollStats:
    connected: int = 0
    answers: Counter[int] = field(default_factory=Counter)  # by status
    changed: int = 0
    diffs: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # connection errors by kind


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _agent(
    host: str, port: int, token: str, stats: PollStats, ramp: asyncio.Semaphore
) -> None:
    """One node agent: polls with diffs, parks, re-polls at once after each answer."""
    since: int | None = None
    history: str | None = None
    async with ramp:  # connect and take the first (whole) set a few at a time: see RAMP_AGENTS
        reader, writer = await asyncio.open_connection(host, port)
        stats.connected += 1
        writer.write(
            f"GET /v1/agent/peers?diff=true&wait=0 HTTP/1.1\r\nhost: {host}\r\n"
            f"authorization: Bearer {token}\r\n\r\n".encode()
        )
        status, body = await _read_response(reader)
        stats.answers[status] += 1
        if status == 200:
            answer = json.loads(body)
            since, history = answer["revision"], answer.get("history")
    try:
        while True:
            query = "diff=true&wait=0"
            if since is not None:
                query = f"since={since}&diff=true&wait={LONG_POLL_SECONDS}"
                if history is not None:
                    query += f"&history={history}"
            writer.write(
                f"GET /v1/agent/peers?{query} HTTP/1.1\r\nhost: {host}\r\n"
                f"authorization: Bearer {token}\r\n\r\n".encode()
            )
            try:
                status, body = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                stats.failures[type(exc).__name__] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            stats.answers[status] += 1
            if status != 200:
                await asyncio.sleep(1)
                continue
            answer = json.loads(body)
            if answer["changed"]:
                stats.changed += 1
                stats.diffs += answer.get("diff_since") is not None
                history = answer.get("history", history)
            since = answer["revision"]
    finally:
        stats.connected -= 1
        writer.close()


@dataclass
class Issued:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    # How late each request left the load generator (its own loop busy, or no free connection):
    # what of a latency the server did not cause.
    send_lags: list[float] = field(default_factory=list)
    # Seconds after the start at which a request over SLOW_SECONDS was due, to tell a steady
    # tail from bursts.
    slow_due: list[float] = field(default_factory=list)


ISSUING_CONNECTIONS = 64
SLOW_SECONDS = 0.1  # P8's target for the p99


async def _issue_at_rate(
    api_url: str, seeded: Seeded, per_second: float, seconds: float, issued: Issued
) -> None:
    """Open loop: one POST /v1/configs due every 1/per_second s, round-robin over nodes and
    wallets, sent by 64 connections (one httpx client each, as in P2). A latency counts from
    when the request was due, so time queued for a free connection while the server is behind
    is in it, as a user would see it."""
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def connection(http: httpx.AsyncClient) -> None:
        async with http:
            while (job := await due.get()) is not None:
                n, at = job
                body = {
                    "node_id": seeded.node_ids[n % len(seeded.node_ids)],
                    "protocol": "wireguard",
                    "public_key": random_wg_key(),
                }
                headers = seeded.wallets[n % len(seeded.wallets)]
                issued.send_lags.append(time.perf_counter() - at)
                try:
                    response = await http.post("/v1/configs", json=body, headers=headers)
                except httpx.HTTPError as exc:
                    issued.statuses[type(exc).__name__] += 1
                    continue
                latency = time.perf_counter() - at
                issued.latencies.append(latency)
                if latency > SLOW_SECONDS:
                    issued.slow_due.append(at - start)
                issued.statuses[str(response.status_code)] += 1

    # keep-alive shorter than uvicorn's 5 s: never send on a connection it is closing
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=3)
    # Built before the clock starts: each client loads a TLS context (~20 ms), 64 of them
    # stalled this loop for over a second, which the first issuances counted as latency.
    clients = [
        httpx.AsyncClient(base_url=api_url, timeout=60, limits=one)
        for _ in range(ISSUING_CONNECTIONS)
    ]
    start = time.perf_counter()
    senders = [asyncio.create_task(connection(http)) for http in clients]
    for n in range(int(per_second * seconds)):
        at = start + n / per_second
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait((n, at))
    for _ in senders:
        due.put_nowait(None)
    await asyncio.gather(*senders)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def _sample_rss(pid: int, samples: list[int]) -> None:
    while True:
        samples.append(_rss_kib(pid))
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


@dataclass
class SoakResult:
    label: str
    minutes: float
    polls: int
    per_second: float
    issued: Issued
    poll_stats: PollStats | None
    rss_kib: list[int]
    server_cpu_seconds: float
    parked_at_start: int
    ramp_seconds: float
    load_generator_cpu_seconds: float
    loop_lags: list[float]
    # POST /v1/configs as the server's own middleware timed it: (requests, of them over 100 ms)
    server_timed: tuple[int, int]


async def soak(
    label: str,
    api_url: str,
    server_pid: int,
    seeded: Seeded,
    polls: int,
    per_second: float,
    minutes: float,
    profile_raw: Path | None = None,
) -> SoakResult:
    """`polls` agents parked (the first `polls` seeded nodes), then issuance at `per_second`
    for `minutes`, the server's RSS sampled throughout (and its stacks by py-spy into
    `profile_raw` during the issuance, if given)."""
    stats = PollStats()
    url = urlsplit(api_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    ramp = asyncio.Semaphore(RAMP_AGENTS)
    started = time.perf_counter()
    agents = [
        asyncio.create_task(_agent(host, port, token, stats, ramp))
        for token in seeded.node_tokens[:polls]
    ]
    # Parked: every agent connected and answered once (its first, full, poll).
    deadline = time.monotonic() + 600
    while polls and (stats.connected < polls or stats.answers.total() < polls):
        if time.monotonic() > deadline or any(a.done() for a in agents):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(5 if polls else 0)  # the last ones park
    ramp_seconds = time.perf_counter() - started
    parked_at_start = stats.connected
    rss: list[int] = []
    sampler = asyncio.create_task(_sample_rss(server_pid, rss))
    issued = Issued()
    timed_before = await _server_timed_issuances(api_url)
    cpu_before, own_cpu_before = cpu_seconds(server_pid), time.process_time()
    lags: list[float] = []
    ticker = asyncio.create_task(_loop_lag(lags))
    spy = profile.sampled(server_pid, profile_raw) if profile_raw else contextlib.nullcontext()
    try:
        with spy, _no_full_collections():
            await _issue_at_rate(api_url, seeded, per_second, minutes * 60, issued)
        rss.append(_rss_kib(server_pid))
        timed_after = await _server_timed_issuances(api_url)
    finally:
        own_cpu = time.process_time() - own_cpu_before
        sampler.cancel()
        ticker.cancel()
        for task in agents:
            task.cancel()
        await asyncio.gather(sampler, ticker, *agents, return_exceptions=True)
    for task in agents:
        if task.done() and not task.cancelled() and task.exception() is not None:
            stats.failures[type(task.exception()).__name__] += 1
    return SoakResult(
        label, minutes, polls, per_second, issued, stats if polls else None, rss,
        cpu_seconds(server_pid) - cpu_before, parked_at_start, ramp_seconds, own_cpu, lags,
        (timed_after[0] - timed_before[0], timed_after[1] - timed_before[1]),
    )  # fmt: skip


async def _server_timed_issuances(api_url: str) -> tuple[int, int]:
    """From the server's /metrics: POST /v1/configs requests so far, and how many of them took
    over SLOW_SECONDS by its own clock (from the middleware's start to its end: time queued in
    the server's event loop before that is not in it)."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        text = (await http.get("/metrics")).text
    total = fast = 0
    for family in text_string_to_metric_families(text):
        if family.name != "nodus_http_request_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            # the route label is the template inside the /v1 router: "/configs"
            if labels.get("method") != "POST" or labels.get("route") != "/configs":
                continue
            if sample.name.endswith("_count"):
                total = int(sample.value)
            elif sample.name.endswith("_bucket") and float(labels["le"]) == SLOW_SECONDS:
                fast = int(sample.value)
    return total, total - fast


LAG_TICK_SECONDS = 0.01


@contextlib.contextmanager
def _no_full_collections() -> Iterator[None]:
    """The load generator holds 10,000 agents' connections too: CPython's full collections
    stopped its loop for up to 0.3 s, which the latencies counted. None run during the
    measurement: the server's own policy (control_plane/gc_policy.py), then CPython's again."""
    thresholds = gc.get_threshold()
    take_over_full_collections()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _loop_lag(lags: list[float]) -> None:
    """How late the load generator's own event loop wakes a 10 ms sleep: time a response waits
    in its socket before it is read, which the latencies include but the server did not cause."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(LAG_TICK_SECONDS)
        lags.append(time.perf_counter() - before - LAG_TICK_SECONDS)


def _ms(values: list[float], share: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(len(ordered) * share))]:,.0f} ms"


SLOW_WINDOW_SECONDS = 10


def _slow_windows(due: list[float]) -> str:
    """`12 in 30-40 s, 3 in 90-100 s, ...`: where the slow requests cluster (at most 8 windows,
    the busiest)."""
    windows = Counter(int(at // SLOW_WINDOW_SECONDS) for at in due)
    busiest = sorted(windows.most_common(8))
    return ", ".join(
        f"{count:,} in {w * SLOW_WINDOW_SECONDS}-{(w + 1) * SLOW_WINDOW_SECONDS} s"
        for w, count in busiest
    )


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def report(section: Section, result: SoakResult, target: str) -> None:
    issued = result.issued
    total = sum(issued.statuses.values())
    errors = total - issued.statuses.get("201", 0)
    rows = [
        ("issuances", f"{total:,} at {result.per_second:.1f}/s for {result.minutes:g} min"),
        ("issuance errors (not 201)", f"{errors:,}"),
        ("issuance statuses", ", ".join(f"{k}: {v:,}" for k, v in sorted(issued.statuses.items()))),
        ("issuance p50 / p99 / max", f"{_ms(issued.latencies, 0.5)} / "
         f"{_ms(issued.latencies, 0.99)} / {_ms(issued.latencies, 1.0)}"),
        ("of it, the load generator's own send lag p50 / p99 / max",
         f"{_ms(issued.send_lags, 0.5)} / {_ms(issued.send_lags, 0.99)} / "
         f"{_ms(issued.send_lags, 1.0)}"),
        (f"issuances over {SLOW_SECONDS * 1000:.0f} ms as the server timed them",
         f"{result.server_timed[1]:,} of {result.server_timed[0]:,}"),
        (f"issuances over {SLOW_SECONDS * 1000:.0f} ms, by when they were due",
         _slow_windows(issued.slow_due) or "none"),
    ]  # fmt: skip
    if result.poll_stats is not None:
        polls = result.poll_stats
        answers = ", ".join(f"{k}: {v:,}" for k, v in sorted(polls.answers.items()))
        failures = ", ".join(f"{k}: {v:,}" for k, v in sorted(polls.failures.items())) or "0"
        rows += [
            ("long-polls parked after the ramp", f"{result.parked_at_start:,} of {result.polls:,} "
             f"(ramp {result.ramp_seconds:.0f} s)"),
            ("poll answers by status", answers),
            ("poll answers with a change / of them diffs", f"{polls.changed:,} / {polls.diffs:,}"),
            ("poll connection errors", failures),
        ]  # fmt: skip
    if result.rss_kib:
        first, last, peak = result.rss_kib[0], result.rss_kib[-1], max(result.rss_kib)
        rows += [
            ("server RSS after the ramp / at the end / peak",
             f"{_mib(first)} / {_mib(last)} / {_mib(peak)}"),
            ("server RSS growth", f"{(last - first) / first:+.1%}"),
        ]  # fmt: skip
    cpu = result.server_cpu_seconds
    share = cpu / (result.minutes * 60)
    rows.append(("server CPU during the issuance", f"{cpu:,.0f} s ({share:.0%} of a core)"))
    own = result.load_generator_cpu_seconds
    rows += [
        ("load generator CPU (agents and issuers, one process)",
         f"{own:,.0f} s ({own / (result.minutes * 60):.0%} of a core)"),
        ("load generator loop lag p50 / p99 / max", f"{_ms(result.loop_lags, 0.5)} / "
         f"{_ms(result.loop_lags, 0.99)} / {_ms(result.loop_lags, 1.0)}"),
    ]  # fmt: skip
    section.table(("measure", "value"), rows)
    section.add(target, "")


def p2_peak(report_text: str) -> float | None:
    """The highest configs/s of P2's one-worker runs of this code in an existing report, if
    any: R9 serves one worker, so half the peak of several workers would overload it."""
    if "## P2: " not in report_text:
        return None
    p2 = report_text.split("## P2: ", 1)[1].split("\n## ", 1)[0]
    rates = []
    for line in p2.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        label = cells[0]
        if (
            len(cells) >= 2
            and "configs" in label
            and " at " not in label
            and "workers" not in label
        ):
            with contextlib.suppress(ValueError):
                rates.append(float(cells[1].replace(",", "")))
    return max(rates) if rates else None


def _report_profile(section: Section, profile_dir: Path | None, name: str, label: str) -> None:
    if profile_dir is not None and (profile_dir / name).exists():
        http_load.report_profiles(section, [(label, profile.summarize(profile_dir / name))])


P8_TARGET = (
    "Target on 2 quiet cores: 0 errors, p99 of issuance at most 100 ms, RSS growth at most 10%."
)


def measure_soaks(
    sections: dict[str, Section],
    polls: int,
    only: set[str],
    minutes: float,
    peak: float | None,
    profile_dir: Path | None = None,
) -> None:
    """P8 (`polls` agents parked) then R9, each against a fresh control plane process on one
    stack; with `profile_dir`, py-spy samples the server during each one's issuance."""
    from bench.stack import running_stack, uvicorn_server, wait_indexed
    from control_plane.agent.feed import MAX_WAITERS
    from control_plane.paths import REPO_ROOT

    limit = raise_fd_limit()
    issues_per_minute = 1_000
    r9_rate = (peak or 0) / 2
    r9_issues = r9_rate * 60 * minutes if "R9" in only else 0
    p8_issues = issues_per_minute * minutes if "P8" in only else 0
    # A wallet may hold NODUS_DEVICE_LIMIT (40, bench/stack.py) configs: 15 each is well within.
    subscribers = max(100, int((r9_issues + p8_issues) / 15) + 1)
    with running_stack() as stack:
        env = {**stack.env, "NODUS_ARTIFACTS_DIR": str(REPO_ROOT / "contracts" / "out")}
        serve = functools.partial(
            uvicorn_server, "control_plane.app:build_from_env", env, REPO_ROOT, factory=True
        )
        parked = min(polls, MAX_WAITERS)
        with serve() as api:
            # Seeded once the indexer has read the deployment's blocks: its first run re-reads
            # every mirrored node's state from the chain (the minimum stake was set), which
            # would mark nodes the chain does not know inactive.
            asyncio.run(wait_indexed(stack))
            seeded = asyncio.run(seed(stack, polls, subscribers))
            if "P8" in only:
                rate = issues_per_minute / 60
                raw = profile_dir / "p8.raw.txt" if profile_dir else None
                run = soak("P8", api.url, api.process.pid, seeded, parked, rate, minutes, raw)
                result = asyncio.run(run)
        if "P8" in only:
            section = sections["P8"]
            if polls > MAX_WAITERS:
                cap = f"The control plane parks at most {MAX_WAITERS:,} long-polls per replica"
                section.add(f"{cap} (agent/feed.py MAX_WAITERS); measured at that cap.", "")
            report(section, result, P8_TARGET)
            _report_profile(section, profile_dir, "p8.raw.txt", "P8's issuance")
            section.add(
                f"{polls:,} nodes and {subscribers:,} paying wallets seeded into the database and "
                "its chain mirror (bench/soak.py says why), one agent token each as agent login "
                f"mints it; one asyncio process holds the {parked:,} keep-alive connections (open "
                f"files raised to {limit:,}), each agent asking for diffs and re-polling at once; "
                "issuance is open-loop, spread over the nodes (each wakes that node's parked "
                "poll). One uvicorn worker; RSS sampled every 5 s from the end of the ramp. "
                f"Shortened runs: `--soak-minutes` (this run: {minutes:g}).",
                "",
            )
        if "R9" in only:
            section = sections["R9"]
            if peak is None:
                section.add("Not measured: no P2 figure to halve (run P2 first, or with it).")
                return
            with serve() as api:
                raw = profile_dir / "r9.raw.txt" if profile_dir else None
                run = soak("R9", api.url, api.process.pid, seeded, 0, r9_rate, minutes, raw)
                result = asyncio.run(run)
            report(section, result, "Issue 14's R9: errors and RSS growth at half the peak.")
            _report_profile(section, profile_dir, "r9.raw.txt", "R9's issuance")
            section.add(
                f"Half of P2's peak ({peak:,.0f} configs/s, the best one-worker P2 run of this "
                f"code in the report) is {r9_rate:,.1f}/s, open-loop, over {polls:,} seeded "
                f"nodes and {subscribers:,} seeded wallets, on a fresh control plane process "
                f"(one uvicorn worker), {minutes:g} min.",
                "",
            )
