"""P7: indexer catch-up (placeholder until measured)."""

from __future__ import annotations

from bench.report import Section


def measure_p7(section: Section, quick: bool) -> None:
    section.add("Not measured yet.")
