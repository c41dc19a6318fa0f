"""`scripts/bench [--quick] [--before REF] [--only P1,P2,...] [--out PATH]`: runs the
benchmarks and writes bench/report.md. See bench/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import connect, epoch, external, http_load, indexer, profile, soak
from bench.report import SECTIONS, Section, load_average, previous_sections, write
from bench.stack import Server, build_fixture, running_stack, source_of, uvicorn_server
from control_plane.instruments import MULTIPROCESS_DIR
from control_plane.paths import REPO_ROOT

REPORT = REPO_ROOT / "bench" / "report.md"

TITLES = {
    "P1": "unchanged agent poll vs bare FastAPI",
    "P2": "config issuance at 64 concurrent",
    "P3": "subscribe receipt to a usable config, and to the first packet",
    "P4": "WireGuard apply",
    "P5": "an epoch for 100,000 operators",
    "P6": "receipt gas of the hot calls",
    "P7": "indexer catch-up vs naive per-block polling",
    "P8": "10,000 parked long-polls plus 1,000 issuances a minute",
    "R9": "soak at half the peak issuance rate",
}


def http_benchmarks(
    sections: dict[str, Section],
    quick: bool,
    before: str | None,
    only: set[str],
    profile_dir: Path | None = None,
) -> None:
    """P1 and P2 on one stack (one anvil, one database, one control plane)."""
    nodes, subscribers = (10, 20) if quick else (100, 200)
    seconds, rounds = (2.0, 1) if quick else (10.0, 3)
    previous: Server | None = None
    with running_stack() as stack, contextlib.ExitStack() as servers:
        env = {**stack.env, "NODUS_ARTIFACTS_DIR": str(REPO_ROOT / "contracts" / "out")}
        bare = servers.enter_context(uvicorn_server("bench.bare_app:app", env, REPO_ROOT))
        api = servers.enter_context(
            uvicorn_server("control_plane.app:build_from_env", env, REPO_ROOT, factory=True)
        )
        fixture = asyncio.run(build_fixture(stack, api.url, nodes, subscribers))
        poll = asyncio.run(_current_poll_url(api.url, fixture.node_ids[0], fixture.node_token))
        targets = [
            http_load.Target("bare FastAPI, same uvicorn", bare.url + "/"),
            http_load.Target("`/healthz`", api.url + "/healthz"),
            http_load.Target("unchanged poll", api.url + poll, fixture.node_token),
        ]
        if before is not None:
            old = Path(servers.enter_context(tempfile.TemporaryDirectory()))
            source_of(before, old)
            old_env = {**env, "PYTHONPATH": str(old), "NODUS_RUN_JOBS": "false"}
            previous = servers.enter_context(
                uvicorn_server("control_plane.app:build_from_env", old_env, old, factory=True)
            )
            targets += [
                http_load.Target(f"`/healthz` at {before}", previous.url + "/healthz"),
                http_load.Target(
                    f"unchanged poll at {before}", previous.url + poll, fixture.node_token
                ),
            ]
        sections["P1"].add(
            f"`unchanged poll` is `GET {poll.split('?')[0]}?since=<current>&wait=0` with node 0's "
            "agent token.",
            "",
        )
        if "P1" in only:
            http_load.measure_p1(sections["P1"], targets, seconds, rounds)
        if "P2" not in only:
            return
        spreads = {
            f"one node, {5 * subscribers:,} configs": fixture.node_ids[:1],
            f"{nodes} nodes, {5 * subscribers:,} configs": fixture.node_ids,
        }
        servers_p2 = [("", api)] + ([(f" at {before}", previous)] if previous is not None else [])
        cores = os.cpu_count() or 1
        if cores > 1:  # the control plane as `serve` runs it by default: a worker per core
            metrics_dir = servers.enter_context(tempfile.TemporaryDirectory())
            by_default = servers.enter_context(
                uvicorn_server(
                    "control_plane.app:build_from_env",
                    {**env, MULTIPROCESS_DIR: metrics_dir},
                    REPO_ROOT,
                    factory=True,
                    workers=cores,
                )
            )
            servers_p2.append((f", {cores} workers (`serve`'s default)", by_default))
        for _, server in servers_p2:
            asyncio.run(http_load.warm_up(stack, server.url, fixture, 64))
        runs = []
        profiles = []
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
        for n, (label, onto) in enumerate(spreads.items()):
            for suffix, server in servers_p2:  # interleaved: a load spike hits both alike
                raw = (profile_dir or Path(tempfile.gettempdir())) / f"p2-{n}{suffix}.raw.txt"
                sampling = profile_dir is not None and server is api
                with (
                    profile.sampled(server.process.pid, raw)
                    if sampling
                    else contextlib.nullcontext()
                ):
                    issue = http_load.issue_configs(
                        stack, server.url, fixture, onto, 5, 64, label + suffix, server.process.pid
                    )
                    runs.append(asyncio.run(issue))
                if sampling and raw.exists():
                    profiles.append((label, profile.summarize(raw)))
        http_load.report_p2(sections["P2"], runs, 64)
        http_load.report_profiles(sections["P2"], profiles)


async def _current_poll_url(api_url: str, node_id: str, headers: dict[str, str]) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=api_url) as http:
        response = await http.get("/v1/agent/peers", headers=headers)
        response.raise_for_status()
        revision = response.json()["revision"]
    return f"/v1/agent/peers?since={revision}&wait=0"


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (smoke)")
    parser.add_argument("--before", metavar="REF", help="also serve the control plane at git REF "
                        "for P1 (a before/after in the same run), e.g. --before main")  # fmt: skip
    parser.add_argument("--only", default=",".join(SECTIONS), help="e.g. P1,P2")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="sample the server by py-spy "
                        "in P2, P8, R9; raw stacks to DIR, shares in the report")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="P8 and R9's length")
    parser.add_argument("--soak-polls", type=int, default=10_000, help="P8's parked long-polls")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    only = {key.strip().upper() for key in args.only.split(",")}
    started_load = load_average()
    sections = {key: Section(key, TITLES[key]) for key in SECTIONS}
    kept = previous_sections(args.out) if not args.quick else {}
    runners: dict[str, Callable[[], None]] = {
        "P3": lambda: connect.measure_p3(sections["P3"], args.quick),
        "P4": lambda: external.measure_p4(sections["P4"], args.quick),
        "P5": lambda: epoch.measure_p5(sections["P5"], args.quick),
        "P6": lambda: external.measure_p6(sections["P6"]),
        "P7": lambda: indexer.measure_p7(sections["P7"], args.quick),
    }
    if only & {"P1", "P2"}:
        print("bench: P1, P2 (HTTP)", file=sys.stderr)
        http_benchmarks(sections, args.quick, args.before, only, args.profile)
    for key, run in runners.items():
        if key in only:
            print(f"bench: {key}", file=sys.stderr)
            run()
    if only & {"P8", "R9"}:
        print("bench: P8, R9 (soaks)", file=sys.stderr)
        minutes = min(args.soak_minutes, 0.5) if args.quick else args.soak_minutes
        # Half of the peak issuance rate: this run's P2, else the report's.
        peak = soak.p2_peak("\n".join(["## P2: ", *sections["P2"].lines])) or soak.p2_peak(
            "\n".join(["## P2: ", *(kept or previous_sections(REPORT)).get("P2", [])])
        )
        polls = min(args.soak_polls, 200) if args.quick else args.soak_polls
        soak.measure_soaks(sections, polls, only, minutes, peak, args.profile)
    write(args.out, sections, started_load, args.quick, kept)
    print(f"bench: wrote {os.path.relpath(args.out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
