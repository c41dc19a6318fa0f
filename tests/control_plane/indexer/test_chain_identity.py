"""The mirror is tied to its chain: a database built from one anvil, opened against a fresh
anvil (same chain id, same deployer, so the same addresses, but a new genesis block), is
refused by default, and with NODUS_ON_CHAIN_CHANGE=reset emptied so no row of the gone chain is
served (issue 14, finding 6)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.indexer.identity import ChainChanged
from control_plane.indexer.models import ChainIdentity
from control_plane.indexer.sync import sync_chain
from control_plane.jobs import Services, run_exclusive
from control_plane.nodes.models import Node
from control_plane.settings import Settings
from tests.control_plane.agent.conftest import World
from tests.support.devchain import Anvil, deploy, running_anvil


async def count(settings: Settings, model: type[Node] | type[ChainIdentity]) -> int:
    engine = make_engine(settings.database_url)
    async with unit_of_work(make_sessionmaker(engine)) as session:
        total = await session.scalar(select(func.count()).select_from(model))
    await engine.dispose()
    return int(total or 0)


async def test_a_database_of_a_gone_chain_is_refused_or_reset(
    settings: Settings, anvil: Anvil, deployment: Deployment, tmp_path: Path
) -> None:
    first = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    async with LifespanManager(create_app(settings, chain=first)):
        pass  # records the identity of the session's chain
    await first.aclose()
    assert await count(settings, ChainIdentity) == 1
    engine = make_engine(settings.database_url)
    await World(make_sessionmaker(engine)).node()  # a node registered on the old chain
    await engine.dispose()

    with running_anvil() as fresh:
        deploy(fresh.rpc_url, tmp_path)
        new_deployment = Deployment.for_chain(31337, tmp_path)
        assert new_deployment.addresses == deployment.addresses  # only the genesis tells
        moved = settings.model_copy(update={"rpc_url": fresh.rpc_url, "deployments_dir": tmp_path})
        reader = Web3ChainReader.connect(fresh.rpc_url, new_deployment, timeout=10)
        try:
            with pytest.raises(ChainChanged, match="NODUS_ON_CHAIN_CHANGE=reset"):
                async with LifespanManager(create_app(moved, chain=reader)):
                    pass
            assert await count(settings, Node) == 1  # refused: nothing touched

            reset = moved.model_copy(update={"on_chain_change": "reset"})
            app = create_app(reset, chain=reader)
            async with LifespanManager(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    listed = (await http.get("/v1/nodes")).json()
            assert listed["items"] == []
            assert await count(settings, Node) == 0
        finally:
            await reader.aclose()


async def test_a_running_indexer_stops_or_resets_when_the_chain_under_it_changes(
    settings: Settings,
    anvil: Anvil,
    deployment: Deployment,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The start-up check cannot see a chain restarted later, nor one unreachable at start-up:
    the indexer's job re-checks before it mirrors anything."""
    first = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    async with LifespanManager(create_app(settings, chain=first)):
        pass  # records the identity of the session's chain
    await first.aclose()
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    await World(sessions).node()  # a node registered on the old chain

    with running_anvil() as fresh:
        deploy(fresh.rpc_url, tmp_path)
        new_deployment = Deployment.for_chain(31337, tmp_path)
        reader = Web3ChainReader.connect(fresh.rpc_url, new_deployment, timeout=10)
        try:
            # The process kept running while its chain was replaced: same URL, same addresses.
            refusing = Services(settings, sessions, reader)
            with caplog.at_level("ERROR", logger="nodus.indexer.identity"):
                assert await run_exclusive(refusing, "chain_sync", sync_chain)
                assert await run_exclusive(refusing, "chain_sync", sync_chain)
            stops = [r for r in caplog.records if "chain sync stopped" in r.getMessage()]
            assert len(stops) == 1  # said once, with the fix
            assert "NODUS_ON_CHAIN_CHANGE=reset" in stops[0].getMessage()
            assert await count(settings, Node) == 1  # refused: nothing touched or mirrored

            reset = settings.model_copy(update={"on_chain_change": "reset"})
            resetting = Services(reset, sessions, reader)
            assert await run_exclusive(resetting, "chain_sync", sync_chain)
            assert await count(settings, Node) == 0  # the gone chain's node is no longer served
            async with unit_of_work(sessions) as session:
                identity = await session.scalar(select(ChainIdentity))
            assert identity is not None
            assert identity.genesis_hash == (await reader.block_hash(0)).lower()
        finally:
            await reader.aclose()
            await engine.dispose()
