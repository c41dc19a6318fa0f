"""The API's runtime dependencies, in one place: the settings, the services the app factory's
lifespan created (chain reader, caches), the chain reader itself, the request's session (the
request owns the transaction), the `{node_id}` path parameter and the page-limit check.
Principals are in auth/dependencies.py; the peer feed, an agent-domain object, is `Feed` in
agent/router.py (this module sits below the domains)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from control_plane.chain.client import ChainReader
from control_plane.db import Session
from control_plane.errors import Invalid
from control_plane.jobs import Services
from control_plane.patterns import NODE_ID
from control_plane.settings import Settings

__all__ = [
    "ChainDep",
    "NodeIdPath",
    "ServicesDep",
    "Session",
    "SettingsDep",
    "check_page_limit",
]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_chain(services: Annotated[Services, Depends(get_services)]) -> ChainReader:
    return services.chain


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
ChainDep = Annotated[ChainReader, Depends(get_chain)]

# `{node_id}` in a path: the grammar and the documented example of every such route.
NodeIdPath = Annotated[
    str,
    Path(
        pattern=NODE_ID,
        description="the node's on-chain id (bytes32 as 0x-hex)",
        examples=["0x6e6f6465000000000000000000000000000000000000000000000000000000a1"],
    ),
]


def check_page_limit(limit: int, settings: Settings) -> int:
    """A `limit` query parameter within the max_page_size setting (422 beyond it). Each route
    declares its own parameter (its default and description are part of the API document)."""
    if limit > settings.max_page_size:
        raise Invalid(f"limit must be at most {settings.max_page_size}")
    return limit
