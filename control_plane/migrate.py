"""Alembic, driven from code: `nodus-control-plane migrate` and the test fixtures use it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Applies migrations up to `revision` (Alembic runs its own event loop: use a thread)."""
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), revision)


def new_revision(database_url: str, message: str, rev_id: str | None = None) -> None:
    """Autogenerates a revision from the models against a database at head."""
    command.revision(
        alembic_config(database_url), message=message, autogenerate=True, rev_id=rev_id
    )


def regenerate_initial(admin_url: str) -> None:
    """Rewrites 0001_initial from the models. Only while nothing is released: once a database
    exists anywhere, schema changes are new revisions instead."""
    import asyncpg  # local: a developer tool, not a runtime path

    scratch = "nodus_schema_scratch"

    async def recreate() -> None:
        conn = await asyncpg.connect(admin_url.replace("+asyncpg", ""))
        await conn.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
        await conn.execute(f'CREATE DATABASE "{scratch}"')
        await conn.close()

    for old in (MIGRATIONS_DIR / "versions").glob("0001_*.py"):
        old.unlink()
    asyncio.run(recreate())
    base, _, _ = admin_url.rpartition("/")
    new_revision(f"{base}/{scratch}", "initial schema", rev_id="0001")
    import subprocess  # local: a developer tool

    (generated,) = (MIGRATIONS_DIR / "versions").glob("0001_*.py")
    for args in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
        subprocess.run(["ruff", *args, str(generated)], check=False)  # noqa: S603, S607


if __name__ == "__main__":
    # python -m control_plane.migrate [admin database URL]
    import sys

    regenerate_initial(
        sys.argv[1]
        if len(sys.argv) > 1
        else "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
