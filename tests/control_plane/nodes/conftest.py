"""Fixtures for the nodes API tests: a funded operator wallet and a node it registered in
NodeRegistry on the test's anvil."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from tests.support.builders import NDS, fresh_wallet, register_on_chain


@pytest.fixture
async def operator(w3: Web3Client, deployment: Deployment) -> LocalAccount:
    """A fresh wallet with 1,000 NDS: enough stake for several nodes."""
    return await fresh_wallet(w3, deployment, 1_000 * NDS)


@pytest.fixture
async def staked_node(w3: Web3Client, deployment: Deployment, operator: LocalAccount) -> str:
    """A node id Active in NodeRegistry, operated by `operator` (not yet registered here)."""
    return await register_on_chain(w3, deployment, operator)
