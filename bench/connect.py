"""P3: a subscribe receipt to a usable config (POST /v1/configs answering 201) and to the first
packet through the tunnel, in the e2e subscriber lab (real anvil, PostgreSQL, control plane,
nodus-agent and wireguard-go in network namespaces): tests/e2e/bench_connect.py measures it
(`scripts/bench-connect` runs it alone); this runs that and tabulates what it wrote."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import Section
from control_plane.paths import REPO_ROOT

TEST = "tests/e2e/bench_connect.py::test_bench_subscribe_receipt_to_config_and_first_packet"
TARGETS = {"to 201 config": 1.0, "to first answer": 2.0}
LABELS = {"to 201 config": "receipt -> usable config", "to first answer": "receipt -> first packet"}


def measure_p3(section: Section, quick: bool) -> None:
    missing = [tool for tool in ("wireguard-go", "wg", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing or not Path("/dev/net/tun").exists():
        section.add(
            "Not measured: it needs root, /dev/net/tun and wireguard-go, wg and ip "
            f"(missing: {', '.join(missing) or 'root or /dev/net/tun'})."
        )
        return
    runs = 2 if quick else 5
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "p3.json"
        env = {**os.environ, "NODUS_BENCH_RUNS": str(runs), "NODUS_BENCH_JSON": str(out)}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", TEST, "-q", "-s", "-p", "no:cacheprovider"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 or not out.exists():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            section.add("Not measured: the lab run failed:", "", "```", tail, "```")
            return
        series: dict[str, list[float]] = json.loads(out.read_text())
    rows = []
    for key, target in TARGETS.items():
        values = series[key]
        median = statistics.median(values)
        verdict = "met" if median <= target else f"{median / target:.1f}x over"
        rows.append(
            (
                LABELS[key],
                f"{median:.2f} s",
                f"{min(values):.2f} s",
                f"{max(values):.2f} s",
                f"{target:g} s",
                verdict,
            )
        )
    section.table(
        ("from the subscribe receipt", "median", "min", "max", "target", "median vs"), rows
    )
    section.add(
        f"{runs} runs, WireGuard, in tests/e2e's subscriber lab (`{TEST}`, the same as "
        "`scripts/bench-connect`). Usable config: a wallet that was refused (402) before paying "
        "asks POST /v1/configs every 50 ms from the moment its `subscribe` receipt is in until "
        "it answers 201. First packet: another wallet starts `nodus up` at its receipt; a ping "
        "every 50 ms from the client namespace to a host beyond the node counts the first "
        "answer (the node agent must have applied the peer: its long-poll wakes on the commit).",
        "",
    )
