"""Fixtures for the end-to-end tests: a lab of namespaces cleaned up whatever happens, and the
real control plane in a subprocess. Skipped without root and /dev/net/tun."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control_plane.chain.contracts import Deployment
from control_plane.settings import Settings
from tests.e2e.lab import SKIP_REASON, Lab, can_tunnel
from tests.e2e.stack import ControlPlane, free_tcp_port

needs_tunnels = pytest.mark.skipif(not can_tunnel(), reason=SKIP_REASON)


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
