"""A chain of a test module's own: `anvil`, `deployments_dir` and `deployment` fixtures (module
scope) that replace the session's shared ones for the module that assigns them, for tests the
shared chain does not suit: a deployment with other parameters (a short challenge window), or
one that rewrites the chain's history (anvil_reorg) and must not meet what earlier tests did to
the shared anvil (every test reverts its snapshot there).

A separate module from devchain.py, which the benchmarks import without pytest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from control_plane.chain.contracts import Deployment
from tests.support.devchain import Anvil, deploy, running_anvil

SHORT_GOVERNANCE = {
    "NODUS_VOTING_DELAY": "1",
    "NODUS_VOTING_PERIOD": "1",
    "NODUS_TIMELOCK_DELAY": "1",
}
"""A challenge window must outlast a governance round (TimingGuard): short windows need these."""


def short_window(challenge_seconds: int) -> dict[str, str]:
    """scripts/deploy parameters for a RewardDistributor with a `challenge_seconds` window."""
    return {"NODUS_CHALLENGE_PERIOD": str(challenge_seconds), **SHORT_GOVERNANCE}


def own_chain(label: str, deploy_env: Mapping[str, str] | None = None) -> tuple[Any, Any, Any]:
    """The three fixtures, for a test module to assign at its top level:
    `anvil, deployments_dir, deployment = own_chain("reorgs")`. `deploy_env` adds scripts/deploy
    parameters (NODUS_*)."""

    @pytest.fixture(scope="module", name="anvil")
    def module_anvil() -> Iterator[Anvil]:
        with running_anvil() as node:
            yield node

    @pytest.fixture(scope="module", name="deployments_dir")
    def module_deployments_dir(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Path:
        out_dir: Path = tmp_path_factory.mktemp(f"deployments-{label}")
        deploy(anvil.rpc_url, out_dir, deploy_env)
        return out_dir

    @pytest.fixture(scope="module", name="deployment")
    def module_deployment(deployments_dir: Path) -> Deployment:
        return Deployment.for_chain(31337, deployments_dir)

    return module_anvil, module_deployments_dir, module_deployment
