"""The migrations and the models describe the same schema: a model changed without a new
revision fails here (Alembic's autogenerate check against the migrated test database)."""

from __future__ import annotations

import asyncio

from alembic import command

from control_plane.migrate import alembic_config


async def test_models_match_the_migrated_schema(database_url: str) -> None:
    await asyncio.to_thread(command.check, alembic_config(database_url))
