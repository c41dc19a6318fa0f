"""The report: one Markdown section per benchmark, with the machine it ran on."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SECTIONS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "R9")


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


def previous_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an existing report, each with a line saying which run measured it (its
    date and load average) unless it says so already; {} if there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    head, *parts = text.split("\n## ")
    date = re.search(r"^- date: (.+)$", head, re.MULTILINE)
    load = re.search(r"^- load average \(1/5/15 min\) at the start: ([^;]+);", head, re.MULTILINE)
    kept: dict[str, list[str]] = {}
    for part in parts:
        key, _, rest = part.partition(": ")
        lines = rest.split("\n")[1:]
        while lines and not lines[0].strip():
            lines.pop(0)
        body = "\n".join(lines).rstrip()
        if key not in SECTIONS or not body or body.startswith(("Not run", "Not measured")):
            continue
        if date and load and not body.startswith(("This section is from", "Kept from")):
            note = (
                f"Kept from the previous bench/report.md (its header: {date.group(1)}, load "
                f"average {load.group(1).strip()} at the start)."
            )
            body = note + "\n\n" + body
        kept[key] = body.split("\n")
    return kept


def write(
    path: Path,
    sections: dict[str, Section],
    started_load: str,
    quick: bool,
    kept: dict[str, list[str]] | None = None,
) -> None:
    """Writes the report; a section this run left empty takes its text from `kept` (an earlier
    report's, `previous_sections`) when there is one."""
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
        lines = section.lines or (kept or {}).get(key) or ["Not run in this run (`--only`)."]
        out += [f"## {key}: {section.title}", "", *lines, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out).rstrip() + "\n")
