"""`nodus-control-plane`: migrate the database and serve the API (with its jobs)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from control_plane.instruments import MULTIPROCESS_DIR
from control_plane.migrate import new_revision, upgrade
from control_plane.settings import Settings

app = typer.Typer(help="Nodus control plane.", no_args_is_help=True)


@app.command()
def migrate() -> None:
    """Apply database migrations (NODUS_DATABASE_URL)."""
    settings = Settings()  # type: ignore[call-arg]
    asyncio.run(upgrade(settings.database_url))
    typer.echo("database is at the latest schema")


@app.command()
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the change does.")],
) -> None:
    """Autogenerate a new migration from the models (against NODUS_DATABASE_URL at head)."""
    settings = Settings()  # type: ignore[call-arg]
    asyncio.run(upgrade(settings.database_url))
    new_revision(settings.database_url, message)


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes; default: the machine's cores. Each has its own LISTEN "
            "connection and peer-revision map; each job runs once per interval across them "
            "(the schedule in PostgreSQL).",
        ),
    ] = None,
) -> None:
    """Serve the API and run the jobs.

    Example: `nodus-control-plane serve --host 0.0.0.0 --port 8000 --workers 4`"""
    settings = Settings()  # type: ignore[call-arg]
    count = workers or os.cpu_count() or 1
    if count > 1:
        prepare_multiprocess_metrics()
    uvicorn.run(
        "control_plane.app:build_from_env",
        factory=True,
        host=host,
        port=port,
        workers=count,
        # X-Forwarded-For is handled by the app, from NODUS_TRUSTED_PROXIES only.
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def prepare_multiprocess_metrics() -> Path:
    """Several workers share one /metrics: prometheus_client's multiprocess mode, its files in
    PROMETHEUS_MULTIPROC_DIR (given, or a fresh temporary folder). Its *.db files (and nothing
    else) are removed now, so a previous run's counts are not added to this one's. The workers
    inherit the variable."""
    given = os.environ.get(MULTIPROCESS_DIR)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="nodus-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # only prometheus_client's files
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(directory)
    return directory
