"""P4 (WireGuard apply, through scripts/bench_wg_apply.py) and P6 (receipt gas, through
scripts/gas_report.py, next to the README's gas table)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.report import Section
from control_plane.paths import REPO_ROOT


def measure_p4(section: Section, quick: bool) -> None:
    """nodus-agent's apply next to `wg syncconf` and one `wg set` per peer (the script's own
    table: it needs root, /dev/net/tun and wireguard-go)."""
    missing = [tool for tool in ("ip", "wg", "wireguard-go") if shutil.which(tool) is None]
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists() or missing:
        section.add(
            "Not measured: needs root, /dev/net/tun and wireguard-tools, wireguard-go, iproute2 "
            f"(missing here: {', '.join(missing) or 'root or /dev/net/tun'})."
        )
        return
    args = ["--rounds", "1", "--sizes", "500", "--change-at", "500", "--per-peer-max", "500"]
    if not quick:
        args = ["--rounds", "3", "--sizes", "1000,5000", "--change-at", "5000"]
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_wg_apply.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        section.add("Failed:", "", "```", result.stderr.strip()[-2000:], "```")
        return
    section.add(*[line for line in result.stdout.splitlines() if line.startswith("|")], "")
    section.add(
        "Seconds on a wireguard-go interface in a throwaway namespace; `ours` is nodus-agent's "
        "WireGuardBackend.apply (dump, diff, batched `wg set`). Target: 5,000 peers onto an "
        "empty interface and 1 change at 5,000 no slower than today's 0.53 s / 0.04 s "
        f"(`{' '.join(['scripts/bench-wg-apply', *args])}` alone reproduces this table).",
        "",
    )


def readme_gas() -> dict[str, str]:
    """The README's gas table: call -> its figure as written."""
    table: dict[str, str] = {}
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Gas", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.search(r"\d", cells[1]) and not cells[0].startswith("---"):
            table[cells[0]] = cells[1]
    return table


def _readme_row(call: str, table: dict[str, str]) -> tuple[str, str] | None:
    stem = call.split(" (")[0]
    for label, figure in table.items():
        if label.startswith(stem) or stem.startswith(label.split(" (")[0].split(" / ")[0]):
            return label, figure
    family = stem.split(",")[0]
    for label, figure in table.items():
        if label.startswith(family):
            return label, figure
    return None


def verdict(gas: int, figure: str) -> str:
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", figure)]
    numbers = [n for n in numbers if n > 1_000]
    if not numbers:
        return "no figure"
    if gas in numbers or (len(numbers) >= 2 and min(numbers) <= gas <= max(numbers)):
        return "same"
    nearest = min(numbers, key=lambda n: abs(n - gas))
    return f"{gas - nearest:+,} vs {nearest:,}"


def gas_rows() -> list[tuple[str, int, str]]:
    """scripts/gas_report.py's table (it starts its own anvil): (call, receipt gas, target)."""
    out = subprocess.run(
        [sys.executable, "-m", "scripts.gas_report"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].replace(",", "").isdigit():
            rows.append((cells[0], int(cells[1].replace(",", "")), cells[2]))
    return rows


def measure_p6(section: Section) -> None:
    table = readme_gas()
    out = []
    for call, gas, target in gas_rows():
        found = _readme_row(call, table)
        figure = found[1] if found else ""
        out.append((call, f"{gas:,}", figure, verdict(gas, figure) if found else "", target))
    section.table(("call", "receipt gas now", "README", "vs README", "target"), out)
    section.add(
        "Receipt gas (21,000 base and calldata included) on a fresh anvil with the real "
        "deployment (scripts/gas-report); deterministic, so any difference is a change, not "
        "noise.",
        "",
    )
