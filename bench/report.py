"""The report: one Markdown section per benchmark, with the machine it ran on."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SECTIONS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8")


@dataclass
class Section:
    key: str
    title: str
    lines: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        aligns = ["---"] + ["---:" for _ in header[1:]]
        self.lines.append("| " + " | ".join(aligns) + " |")
        self.lines.extend("| " + " | ".join(row) + " |" for row in rows)
        self.lines.append("")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_lines(started_load: str) -> list[str]:
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        f"- load average (1/5/15 min) at the start: {started_load}; at the end: {load_average()}",
        f"- reproduce: `scripts/bench {shlex.join(sys.argv[1:])}`",
    ]


def write(path: Path, sections: dict[str, Section], started_load: str, quick: bool) -> None:
    out = ["# Nodus benchmarks", ""]
    if quick:
        out += ["**A `--quick` smoke run: small sizes, short runs; not the figures.**", ""]
    out += machine_lines(started_load)
    out += [
        "",
        "Each figure is next to a baseline measured in the same run on the same machine, so the",
        "ratio holds when the machine is busy; absolute numbers move with the load above.",
        "",
    ]
    for key in SECTIONS:
        section = sections[key]
        out += [f"## {key}: {section.title}", "", *section.lines, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out).rstrip() + "\n")
