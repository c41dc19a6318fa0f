"""scripts/bench's harness writes a report with every section of the performance table (the
figures themselves are not checked: CI does not run the benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.report import SECTIONS, Section, previous_sections, write
from bench.soak import p2_peak
from control_plane.paths import REPO_ROOT


def test_quick_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "P5", "--out", str(out)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    report = out.read_text()
    for key in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "R9"):
        assert f"\n## {key}: " in report
    assert "cores" in report
    assert "load average" in report
    assert "reproduce: `scripts/bench --quick --only P5" in report
    p5 = report.split("## P5: ")[1].split("\n## ")[0]
    assert "| operators | database reads | + signature checks | pure part |" in p5
    assert "\n| 10,000 | " in p5  # the quick run's larger size, database reads and pure part
    assert "Not run in this run" in report.split("## P3: ")[1].split("\n## ")[0]


def test_a_run_of_some_sections_keeps_the_others_from_the_previous_report(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    first = {"P1": Section("P1", "one"), "P2": Section("P2", "two")}
    first["P1"].add("| path | req/s |", "old P1 figures")
    first["P2"].add(
        "| run | configs/s |",
        "| 100 nodes, 1,000 configs | 110 |",
        "| x at main | 300 |",
        "| 100 nodes, 1,000 configs, 2 workers (`serve`'s default) | 200 |",
    )
    write(out, {**_empty(), **first}, "1.00 / 1.00 / 1.00", quick=False)

    again = {"P1": Section("P1", "one")}
    again["P1"].add("new P1 figures")
    write(out, {**_empty(), **again}, "2.00 / 2.00 / 2.00", False, previous_sections(out))

    report = out.read_text()
    p1 = report.split("## P1: ")[1].split("\n## ")[0]
    p2 = report.split("## P2: ")[1].split("\n## ")[0]
    assert "new P1 figures" in p1
    assert "old P1 figures" not in report
    assert "Kept from the previous bench/report.md (its header: " in p2
    assert "load average 1.00 / 1.00 / 1.00 at the start" in p2
    assert "| 100 nodes, 1,000 configs | 110 |" in p2
    assert "Not run in this run" in report.split("## P8: ")[1].split("\n## ")[0]
    assert (
        p2_peak(report) == 110
    )  # R9's rate is half of it; a before/after or a 2-worker row is not ours


def _empty() -> dict[str, Section]:
    return {key: Section(key, key.lower()) for key in SECTIONS}
