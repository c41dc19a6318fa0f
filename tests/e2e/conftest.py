"""Fixtures for the end-to-end tests: a lab of namespaces cleaned up whatever happens, and the
real control plane in a subprocess. Skipped without root and /dev/net/tun."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.paths import REPO_ROOT
from control_plane.settings import Settings
from tests.database import admin_database_url, scratch_database
from tests.e2e.lab import SKIP_REASON, Lab, can_tunnel
from tests.e2e.netns_forward import Forwarders
from tests.e2e.stack import ControlPlane, free_tcp_port
from tests.e2e.subscriber_lab import SubscriberLab, build

needs_tunnels = pytest.mark.skipif(not can_tunnel(), reason=SKIP_REASON)
# The subscriber lab's node serves OpenVPN too, and `nodus up --kill-switch` uses nftables.
needs_nft_and_openvpn = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("nft", "openvpn")),
    reason="requires nft and openvpn (apt-get install nftables openvpn)",
)


@pytest.fixture
def dev_database() -> Iterator[str]:
    """A scratch database for a `scripts/dev` run (never the developer's)."""
    with admin_database_url() as admin_url, scratch_database(admin_url) as url:
        yield url


def scripts_dev_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """`scripts/dev`'s environment on free ports, with the state directory and deployments
    file under `tmp_path` (the developer's .nodus and deployments/ are never touched)."""
    return {
        **os.environ,
        "NODUS_API_PORT": str(free_tcp_port()),
        "NODUS_ANVIL_PORT": str(free_tcp_port()),
        "NODUS_DEV_STATE_DIR": str(tmp_path / "state"),
        "NODUS_DEPLOYMENTS_DIR": str(tmp_path / "deployments"),
        "NODUS_DATABASE_URL": database_url,
        **extra,
    }


async def start_scripts_dev(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """A `scripts/dev` run in its own session, its output in `log`."""
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            str(REPO_ROOT / "scripts" / "dev"), stdout=out, stderr=asyncio.subprocess.STDOUT,
            env=env, cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    laboratory = Lab(tmp_path)
    try:
        yield laboratory
    finally:
        await laboratory.close()


@pytest.fixture
async def control_plane(
    settings: Settings, deployment: Deployment, tmp_path: Path
) -> AsyncIterator[ControlPlane]:
    service = ControlPlane(settings, tmp_path, free_tcp_port())
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path (an OpenVPN unix socket path holds at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="nds-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def subscriber_world(
    lab: Lab, settings: Settings, w3: Web3Client, deployment: Deployment, short_tmp: Path
) -> AsyncIterator[SubscriberLab]:
    """The lab of tests/e2e/subscriber_lab.py: client, inet with the control plane, node, beyond."""
    forwarders = Forwarders()
    control_planes: list[ControlPlane] = []
    resolv = None
    try:
        built = await build(lab, settings, w3, deployment, forwarders, short_tmp, control_planes)
        # `ip netns exec` bind-mounts this file over /etc/resolv.conf in the client namespace:
        # what `nodus up` writes there never touches the host's.
        resolv = Path("/etc/netns") / built.client / "resolv.conf"
        resolv.parent.mkdir(parents=True, exist_ok=True)
        resolv.write_text("nameserver 192.0.2.53\n")
        yield built
    finally:
        for control_plane in control_planes:
            await control_plane.stop()
        forwarders.close()
        if resolv is not None:
            shutil.rmtree(resolv.parent, ignore_errors=True)
