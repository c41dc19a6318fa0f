"""scripts/bench's harness writes a report with every section of the performance table (the
figures themselves are not checked: CI does not run the benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    for key in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"):
        assert f"\n## {key}: " in report
    assert "cores" in report
    assert "load average" in report
    assert "reproduce: `scripts/bench --quick --only P5" in report
    p5 = report.split("## P5: ")[1].split("\n## ")[0]
    assert "| operators | database reads | + signature checks | pure part |" in p5
    assert "\n| 10,000 | " in p5  # the quick run's larger size, database reads and pure part
    assert "Not measured yet" in report.split("## P3: ")[1].split("\n## ")[0]
