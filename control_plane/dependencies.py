"""The API's runtime dependencies, in one place: the settings, the services the app factory's
lifespan created (chain reader, caches), the chain reader itself, the peer feed, and the
request's session (the request owns the transaction). Principals are in auth/dependencies.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from control_plane.agent.feed import PeerFeed
from control_plane.chain.client import ChainReader
from control_plane.db import Session
from control_plane.jobs import Services
from control_plane.settings import Settings

__all__ = ["ChainDep", "FeedDep", "ServicesDep", "Session", "SettingsDep"]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_chain(services: Annotated[Services, Depends(get_services)]) -> ChainReader:
    return services.chain


def get_feed(request: Request) -> PeerFeed:
    feed: PeerFeed = request.app.state.feed
    return feed


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
ChainDep = Annotated[ChainReader, Depends(get_chain)]
FeedDep = Annotated[PeerFeed, Depends(get_feed)]
