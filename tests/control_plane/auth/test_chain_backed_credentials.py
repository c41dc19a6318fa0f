"""Credentials follow the chain: a node token dies when its agent key changes or the node exits
on-chain, and an exiting node's operator can no longer change it, within one indexer run (real
anvil transactions, the real indexer), not when the 15-minute token expires."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.db import make_engine, make_sessionmaker, unit_of_work
from control_plane.indexer.sync import index_chain
from control_plane.jobs import Services
from control_plane.settings import Settings
from tests.control_plane.auth.test_agent_login import agent_login, register_node
from tests.support.builders import NDS, fresh_wallet, node_body, post_node, wallet_headers
from tests.support.devchain import Anvil, transact


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every request re-reads the chain mirror (no reuse of a passed check)."""
    return settings.model_copy(update={"node_token_recheck_seconds": 0.0})


@pytest.fixture
async def services(
    settings: Settings, anvil: Anvil, deployment: Deployment
) -> AsyncIterator[Services]:
    engine = make_engine(settings.database_url)
    chain = Web3ChainReader.connect(anvil.rpc_url, deployment, timeout=10)
    yield Services(settings, make_sessionmaker(engine), chain)
    await chain.aclose()
    await engine.dispose()


async def run_indexer(services: Services) -> None:
    async with unit_of_work(services.sessions) as session:
        await index_chain(services, session)


@pytest.fixture
async def operator(w3: Web3Client, deployment: Deployment) -> LocalAccount:
    return await fresh_wallet(w3, deployment, 1_000 * NDS)


@pytest.fixture
def agent() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@pytest.fixture
async def node_id(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    agent: LocalAccount,
) -> str:
    """A node Active on-chain with `agent` as its agent key, registered here by `operator`."""
    node_id = await register_node(w3, deployment, operator, agent.address)
    response = await post_node(client, settings, operator, node_body(node_id))
    assert response.status_code == 201, response.text
    return node_id


async def node_token(client: httpx.AsyncClient, node_id: str, signer: LocalAccount) -> str:
    response = await agent_login(client, node_id, signer)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def poll(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/agent/peers", headers={"authorization": f"Bearer {token}"})


async def test_an_agent_key_change_ends_the_old_token_after_one_indexer_run(
    client: httpx.AsyncClient,
    services: Services,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    agent: LocalAccount,
    node_id: str,
) -> None:
    old_token = await node_token(client, node_id, agent)
    await run_indexer(services)
    assert (await poll(client, old_token)).status_code == 200

    new_agent: LocalAccount = Account.create()
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(
        w3, operator, registry.functions.setAgent(bytes.fromhex(node_id[2:]), new_agent.address)
    )
    await run_indexer(services)

    refused = await poll(client, old_token)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "unauthorized"
    assert "agent key changed" in refused.json()["error"]["message"]
    # The old key cannot sign in again; the new one can, and its token works.
    assert (await agent_login(client, node_id, agent)).status_code == 401
    assert (await poll(client, await node_token(client, node_id, new_agent))).status_code == 200


async def test_an_exit_ends_the_node_token_and_the_operators_changes(
    client: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    agent: LocalAccount,
    node_id: str,
) -> None:
    token = await node_token(client, node_id, agent)
    await run_indexer(services)
    headers = wallet_headers(settings, operator.address)
    before = await client.patch(f"/v1/nodes/{node_id}", json={"country": "NL"}, headers=headers)
    assert before.status_code == 200, before.text

    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, registry.functions.requestExit(bytes.fromhex(node_id[2:])))
    await run_indexer(services)

    patch = await client.patch(f"/v1/nodes/{node_id}", json={"country": "FR"}, headers=headers)
    assert patch.status_code == 409, patch.text
    assert patch.json()["error"]["code"] == "node_not_active"
    assert "exiting" in patch.json()["error"]["message"]
    node = (await client.get(f"/v1/nodes/{node_id}")).json()
    assert node["country"] == "NL"  # unchanged
    assert (await poll(client, token)).status_code == 401
    # Taking the node down stays possible.
    deleted = await client.delete(f"/v1/nodes/{node_id}", headers=headers)
    assert deleted.status_code == 204, deleted.text


async def test_an_exit_is_refused_live_before_the_indexer_saw_the_node(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    node_id: str,
) -> None:
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, registry.functions.requestExit(bytes.fromhex(node_id[2:])))

    patch = await client.patch(
        f"/v1/nodes/{node_id}",
        json={"country": "FR"},
        headers=wallet_headers(settings, operator.address),
    )

    assert patch.status_code == 409, patch.text
    assert patch.json()["error"]["code"] == "node_not_active"
