from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.db import make_engine, make_sessionmaker
from control_plane.jobs import Services
from control_plane.settings import Settings
from tests.support.devchain import Anvil


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No expiry cache: these tests pay and read back within seconds."""
    return settings.model_copy(update={"expiry_cache_seconds": 0.0})


@pytest.fixture
async def services(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[Services]:
    """What the scheduler hands the jobs: real database, real JSON-RPC reader on anvil."""
    engine = make_engine(settings.database_url)
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    yield Services(settings, make_sessionmaker(engine), chain)
    await engine.dispose()
