"""`scripts/dev` after anvil died but the control plane of an earlier run kept running (issue 14,
finding 6): the new run starts a fresh anvil, and the control plane it finds answering checked
its chain only when it started. It must not go on listing the gone chain's nodes: the run
restarts it (which empties the chain data) instead of adopting it.

No root needed (NODUS_DEV_NODE=0); free ports, a scratch database and a state directory of the
test's own."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from control_plane.db import make_sessionmaker, unit_of_work
from control_plane.paths import REPO_ROOT
from tests.control_plane.rewards.support import add_node, new_address
from tests.e2e.conftest import scripts_dev_env, start_scripts_dev
from tests.e2e.lab import sh
from tests.e2e.stack import until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_fresh_anvil_restarts_the_control_plane_left_running(
    dev_database: str, tmp_path: Path
) -> None:
    env = scripts_dev_env(tmp_path, dev_database, NODUS_DEV_NODE="0")
    api_port = env["NODUS_API_PORT"]
    state = tmp_path / "state"
    dev = REPO_ROOT / "scripts" / "dev"
    runs: list[asyncio.subprocess.Process] = []

    async def start_run(log: Path) -> None:
        run = await start_scripts_dev(env, log)
        runs.append(run)

        def running() -> bool:
            assert run.returncode is None, log.read_text()
            return "running; Ctrl-C to stop" in log.read_text()

        await until(running, 300, f"scripts/dev ({log.name})", step=1)

    async def listed() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            response = await http.get("/v1/nodes")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    try:
        await start_run(tmp_path / "first.log")
        # A node of this chain (as the indexer and a registration would have left it).
        engine = create_async_engine(dev_database)
        async with unit_of_work(make_sessionmaker(engine)) as session:
            node = await add_node(session, operator=new_address(), endpoint="192.0.2.7:51820")
        await engine.dispose()
        assert [item["id"] for item in await listed()] == [node]

        # The run dies without stopping anything, then anvil dies: the chain is gone, its
        # control plane still answers.
        runs[0].kill()
        await runs[0].wait()
        anvil = int((state / "anvil.pid").read_text())
        old_control_plane = int((state / "control-plane.pid").read_text())
        os.kill(anvil, signal.SIGTERM)
        await until(lambda: not _alive(anvil), 30, "anvil stopped")

        await start_run(tmp_path / "second.log")

        assert await listed() == []  # the fresh chain has no nodes
        said = (tmp_path / "second.log").read_text()
        assert "mirrors a chain that is gone: restarting it" in said, said
        assert not _alive(old_control_plane)
    finally:
        for run in runs:
            if run.returncode is None:
                run.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(run.wait(), 60)
                except TimeoutError:
                    run.kill()
        await sh(str(dev), "stop", env=env, cwd=REPO_ROOT, seconds=120, check=False)
