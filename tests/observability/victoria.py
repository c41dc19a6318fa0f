"""VictoriaMetrics from Debian's `victoria-metrics` package, on a free port with its own storage,
scraping the given targets every second, and its Prometheus query API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.lab import stop_process
from tests.e2e.stack import free_tcp_port, until

BINARY = "/usr/bin/victoria-metrics"


@dataclass
class VictoriaMetrics:
    directory: Path
    targets: dict[str, str]  # scrape job -> host:port
    port: int = field(default_factory=free_tcp_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        scrape = self.directory / "scrape.yml"
        scrape.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": [target]}]}
                        for job, target in self.targets.items()
                    ],
                }
            )
        )
        log = (self.directory / "victoria-metrics.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            BINARY,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.directory / 'vm-storage'}",
            f"-promscrape.config={scrape}",
            # Answer with the samples just scraped (by default the newest 30 s are hidden).
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()

        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.url}/health", timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy, 30, "VictoriaMetrics to answer /health", step=0.2)

    async def stop(self) -> None:
        if self.process is not None:
            await stop_process(self.process, grace=10)
            self.process = None

    async def query(self, expr: str) -> dict[str, Any]:
        """An instant query at now: the parsed answer (status, data or error)."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.url}/api/v1/query", params={"query": expr})
        answer: dict[str, Any] = response.json()
        return answer

    async def series(self, expr: str) -> list[dict[str, Any]]:
        answer = await self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result
