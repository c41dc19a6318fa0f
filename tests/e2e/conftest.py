"""Fixtures for the end-to-end tests: a lab of namespaces cleaned up whatever happens, and the
real control plane in a subprocess. Skipped without root and /dev/net/tun."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
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
