"""`nodus-control-plane serve --workers 2`: whichever worker answers a scrape, /metrics reports
the requests of both (prometheus_client's multiprocess mode, set up by `serve`), and a previous
run's files are not counted."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from control_plane.agent.feed import MAX_WAITERS
from control_plane.settings import Settings
from tests.control_plane.metrics.scrape import Scrape, scrape
from tests.e2e.stack import until

PORTS = range(20000, 21000)  # this branch's range
REQUESTS = 30


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in range")


def environment(settings: Settings, metrics_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NODUS_DATABASE_URL": settings.database_url,
        "NODUS_RPC_URL": settings.rpc_url,
        "NODUS_CHAIN_ID": str(settings.chain_id),
        "NODUS_DEPLOYMENTS_DIR": str(settings.deployments_dir),
        "NODUS_PUBLIC_URL": "http://testserver",
        "NODUS_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "NODUS_API_KEY_SECRET": settings.api_key_secret.get_secret_value(),
        "NODUS_DATA_KEY": settings.data_key.get_secret_value(),
        "NODUS_RUN_JOBS": "false",
        "NODUS_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


@pytest.fixture
async def served(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # A previous run's counter file: `serve` must not add it to this run's figures.
    (metrics_dir / "counter_1.db").write_bytes(b"\0" * 16)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from control_plane.server import app; app()",
        "serve", "--port", str(port), "--workers", "2",
        stdout=log, stderr=asyncio.subprocess.STDOUT, env=environment(settings, metrics_dir),
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        if process.returncode is not None:
            raise AssertionError((tmp_path / "serve.log").read_text())
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/readyz", timeout=2)).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(ready, 90, "serve --workers 2 to answer /readyz", step=0.2)
        # Both workers up: the readiness above may have come from the first one alone.
        await asyncio.sleep(2)
        yield url, metrics_dir
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def fresh_scrape(url: str) -> Scrape:
    async with httpx.AsyncClient(base_url=url) as http:  # a new connection: any worker
        return await scrape(http)


async def test_every_scrape_counts_the_requests_of_every_worker(
    served: tuple[str, Path],
) -> None:
    url, metrics_dir = served
    assert not (metrics_dir / "counter_1.db").exists()
    for _ in range(REQUESTS):
        async with httpx.AsyncClient(base_url=url) as http:  # a new connection each
            assert (await http.get("/healthz")).status_code == 200

    scrapes = [await fresh_scrape(url) for _ in range(6)]

    for metrics in scrapes:
        healthz = metrics.value(
            "nodus_http_requests_total", method="GET", route="/healthz", status="200"
        )
        assert healthz == REQUESTS
        # Each worker's cap, summed over the live workers.
        assert metrics.value("nodus_longpolls_capacity") == 2 * MAX_WAITERS
        assert metrics.value("nodus_metrics_source_up", source="database") == 1
        assert metrics.value("nodus_subscriptions_active") == 0
