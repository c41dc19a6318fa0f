"""API keys for automation (implemented with the auth domain)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.principal import Principal
from control_plane.errors import Unauthorized
from control_plane.settings import Settings


async def principal_for_api_key(session: AsyncSession, settings: Settings, key: str) -> Principal:
    raise Unauthorized("invalid API key")
