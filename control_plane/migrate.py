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
