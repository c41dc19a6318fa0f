"""Session fixtures: one real anvil with the real contracts deployed by scripts/deploy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from web3 import AsyncWeb3

from control_plane.chain.contracts import Deployment, Web3Client
from tests.chain import Anvil, deploy, running_anvil


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with running_anvil() as node:
        yield node


@pytest.fixture(scope="session")
def deployments_dir(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where scripts/deploy wrote this session's deployments file."""
    out_dir: Path = tmp_path_factory.mktemp("deployments")
    deploy(anvil.rpc_url, out_dir)
    return out_dir


@pytest.fixture(scope="session")
def deployment(deployments_dir: Path) -> Deployment:
    return Deployment.for_chain(31337, deployments_dir)


@pytest.fixture
def w3(anvil: Anvil) -> Web3Client:
    return AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 30}))


@pytest.fixture(autouse=True)
async def isolated_chain(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test that touches the chain starts from the freshly deployed state: anvil snapshots
    before the test and reverts after, so tests cannot see each other's transactions."""
    if "deployment" not in request.fixturenames:
        yield
        return
    anvil: Anvil = request.getfixturevalue("anvil")
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil.rpc_url))
    snapshot = (await w3.provider.make_request("evm_snapshot", []))["result"]
    yield
    await w3.provider.make_request("evm_revert", [snapshot])
