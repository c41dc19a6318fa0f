"""Reading a Prometheus endpoint the way a scraper does: every sample by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """GET http://host:port/metrics, which must answer 200."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{host}:{port}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; NaN when there is none (so any comparison with it fails)."""
    return samples.get((name, frozenset(labels.items())), float("nan"))
