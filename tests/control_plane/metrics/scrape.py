"""Reading /metrics as Prometheus does: samples by name and labels, and the families listed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


@dataclass(frozen=True, slots=True)
class Scrape:
    families: set[str]  # every family listed (HELP/TYPE), with or without samples
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def labelled(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    families: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    # The parser names a counter's family without `_total`; the docs name the sample.
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            families.add(line.split()[2])
    return Scrape(families, samples)


def documented_control_plane_names() -> list[str]:
    """The names in docs/metrics.md's "Control plane" table."""
    text = DOC.read_text()
    section = text.split("## Control plane", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (nodus_[a-z_]+) \|", section, flags=re.MULTILINE)
