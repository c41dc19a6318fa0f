"""Measures what a user sees while PostgreSQL is stopped and frozen (README, Failure behaviour):
the in-process app with the default settings on a throwaway cluster and a fresh anvil.

    PYTHONPATH=. .venv/bin/python scripts/bench_db_faults.py

Prints one line per request: the fault, the path, the status and how long it took."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from control_plane.app import create_app
from control_plane.migrate import upgrade
from control_plane.settings import Settings
from tests.support.devchain import deploy, running_anvil
from tests.support.pgcluster import PostgresCluster, postgres_cluster


async def measure(cluster: PostgresCluster, rpc_url: str, deployments: Path) -> None:
    connection = await asyncpg.connect(cluster.admin_url)
    await connection.execute('CREATE DATABASE "nodus"')
    await connection.close()
    await upgrade(cluster.url("nodus"))
    settings = Settings(
        database_url=cluster.url("nodus"),
        rpc_url=rpc_url,
        deployments_dir=deployments,
        jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        api_key_secret=SecretStr(secrets.token_urlsafe(32)),
        data_key=SecretStr(secrets.token_urlsafe(32)),
        run_jobs=False,
    )
    app = create_app(settings)
    faults: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("stopped", cluster.stop, cluster.start),
        ("frozen", cluster.freeze, cluster.thaw),
    ]
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            await http.get("/v1/nodes")  # a pooled connection exists
            for label, inject, lift in faults:
                inject()
                for path in ("/v1/nodes", "/v1/auth/nonce", "/readyz"):
                    started = time.perf_counter()
                    response = await http.get(path)
                    took = time.perf_counter() - started
                    print(f"{label:8} {path:16} {response.status_code} {took:.2f}s")
                lift()
                started = time.perf_counter()
                for _ in range(600):  # polled: the database says nothing when it is back
                    if (await http.get("/v1/nodes")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                print(f"{label:8} recovered {time.perf_counter() - started:.2f}s after it returned")


def main() -> None:
    with running_anvil() as anvil, postgres_cluster() as cluster:
        deployments = Path(tempfile.mkdtemp(prefix="nodus-bench-"))
        deploy(anvil.rpc_url, deployments)
        asyncio.run(measure(cluster, anvil.rpc_url, deployments))


if __name__ == "__main__":
    main()
