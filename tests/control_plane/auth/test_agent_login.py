"""Node agents sign in with the agent key NodeRegistry holds for their node, read live from a
real anvil with the real contracts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import func, update

from control_plane.auth.models import AgentChallenge
from control_plane.chain.contracts import (
    Deployment,
    Web3Client,
    contract,
    new_node_salt,
    node_id_of,
)
from control_plane.db import unit_of_work
from tests.control_plane.auth.conftest import new_node_id, personal_sign
from tests.support.devchain import dev_account, transact

NDS = 10**18


async def register_node(
    w3: Web3Client, deployment: Deployment, operator: LocalAccount, agent: str
) -> str:
    """Stakes 100 NDS and registers a fresh node id with `agent` as its agent key."""
    salt = new_node_salt()
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, token.functions.approve(registry.address, 100 * NDS))
    await transact(w3, operator, registry.functions.register(salt, 100 * NDS, agent, ""))
    return node_id_of(operator.address, salt)


async def challenge(client: httpx.AsyncClient, node_id: str) -> str:
    response = await client.post("/v1/agent/challenge", json={"node_id": node_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["node_id"] == node_id.lower()
    text: str = body["challenge"]
    return text


async def agent_login(
    client: httpx.AsyncClient, node_id: str, signer: LocalAccount
) -> httpx.Response:
    text = await challenge(client, node_id)
    return await client.post(
        "/v1/agent/login", json={"node_id": node_id, "signature": personal_sign(signer, text)}
    )


@pytest.fixture
def agent() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@pytest.fixture
async def node_id(w3: Web3Client, deployment: Deployment, agent: LocalAccount) -> str:
    return await register_node(w3, deployment, dev_account(3), agent.address)


async def test_agent_key_gets_a_node_token(
    client: httpx.AsyncClient, node_id: str, agent: LocalAccount
) -> None:
    response = await agent_login(client, node_id, agent)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["node_id"] == node_id
    assert body["expires_in"] == 900
    me = await client.get(
        "/v1/auth/me", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json() == {"subject": node_id, "roles": ["node"], "node_id": node_id}


async def test_challenge_names_the_node_and_is_reused_while_fresh(
    client: httpx.AsyncClient, node_id: str
) -> None:
    first = await challenge(client, node_id.upper().replace("0X", "0x"))

    assert node_id in first
    assert "testserver" in first
    # Asking again (anyone may) returns the same open challenge instead of replacing it, so
    # nobody can invalidate the challenge an agent is signing.
    assert await challenge(client, node_id) == first


async def test_replayed_agent_login_is_401(
    client: httpx.AsyncClient, node_id: str, agent: LocalAccount
) -> None:
    text = await challenge(client, node_id)
    body = {"node_id": node_id, "signature": personal_sign(agent, text)}
    assert (await client.post("/v1/agent/login", json=body)).status_code == 200

    replay = await client.post("/v1/agent/login", json=body)

    assert replay.status_code == 401
    assert "challenge" in replay.json()["error"]["message"]
    # A new challenge is a new text: the old signature does not fit it.
    assert await challenge(client, node_id) != text
    assert (await client.post("/v1/agent/login", json=body)).status_code == 401


async def test_concurrent_logins_with_one_challenge_succeed_once(
    client: httpx.AsyncClient, node_id: str, agent: LocalAccount
) -> None:
    text = await challenge(client, node_id)
    body = {"node_id": node_id, "signature": personal_sign(agent, text)}

    responses = await asyncio.gather(*(client.post("/v1/agent/login", json=body) for _ in range(5)))

    assert sorted(r.status_code for r in responses) == [200] + [401] * 4


async def test_wrong_key_is_401_and_leaves_the_challenge_open(
    client: httpx.AsyncClient, node_id: str, agent: LocalAccount
) -> None:
    for impostor in (Account.create(), dev_account(3)):  # a stranger, and the operator itself
        refused = await agent_login(client, node_id, impostor)
        assert refused.status_code == 401
        assert "agent key" in refused.json()["error"]["message"]

    assert (await agent_login(client, node_id, agent)).status_code == 200


async def test_garbage_signature_is_401(client: httpx.AsyncClient, node_id: str) -> None:
    await challenge(client, node_id)
    response = await client.post(
        "/v1/agent/login", json={"node_id": node_id, "signature": "0x" + "00" * 65}
    )
    assert response.status_code == 401


async def test_exited_node_is_403(
    w3: Web3Client,
    deployment: Deployment,
    client: httpx.AsyncClient,
    node_id: str,
    agent: LocalAccount,
) -> None:
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, dev_account(3), registry.functions.requestExit(bytes.fromhex(node_id[2:])))

    response = await agent_login(client, node_id, agent)

    assert response.status_code == 403
    assert "Active" in response.json()["error"]["message"]


async def test_rotated_agent_key_takes_effect_at_once(
    w3: Web3Client,
    deployment: Deployment,
    client: httpx.AsyncClient,
    node_id: str,
    agent: LocalAccount,
) -> None:
    new_agent = Account.create()
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(
        w3,
        dev_account(3),
        registry.functions.setAgent(bytes.fromhex(node_id[2:]), new_agent.address),
    )

    assert (await agent_login(client, node_id, agent)).status_code == 401
    assert (await agent_login(client, node_id, new_agent)).status_code == 200


async def test_unregistered_node_gets_no_challenge(client: httpx.AsyncClient) -> None:
    # Challenges exist only for ids registered on-chain, so nobody can fill the table with rows
    # for made-up nodes.
    response = await client.post("/v1/agent/challenge", json={"node_id": new_node_id()})
    assert response.status_code == 404
    assert "registered on-chain" in response.json()["error"]["message"]


async def test_login_without_a_challenge_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/agent/login", json={"node_id": new_node_id(), "signature": "0x" + "1b" * 65}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "node_id", ["0x1234", "ab" * 32, "0x" + "zz" * 32, "0x" + "ab" * 33, 7, None]
)
async def test_malformed_node_id_is_422(client: httpx.AsyncClient, node_id: object) -> None:
    challenge = await client.post("/v1/agent/challenge", json={"node_id": node_id})
    assert challenge.status_code == 422
    login = await client.post(
        "/v1/agent/login", json={"node_id": node_id, "signature": "0x" + "1b" * 65}
    )
    assert login.status_code == 422


async def _age_challenge(app: FastAPI, node_id: str, left: timedelta) -> None:
    async with unit_of_work(app.state.sessions) as session:
        await session.execute(
            update(AgentChallenge)
            .where(AgentChallenge.node_id == node_id)
            .values(expires_at=func.now() + left)
        )


async def test_challenge_past_half_its_life_is_replaced(
    app: FastAPI, client: httpx.AsyncClient, node_id: str, agent: LocalAccount
) -> None:
    old = await challenge(client, node_id)
    await _age_challenge(app, node_id, timedelta(minutes=2))

    new = await challenge(client, node_id)

    assert new != old
    stale = {"node_id": node_id, "signature": personal_sign(agent, old)}
    assert (await client.post("/v1/agent/login", json=stale)).status_code == 401
    fresh = {"node_id": node_id, "signature": personal_sign(agent, new)}
    assert (await client.post("/v1/agent/login", json=fresh)).status_code == 200


async def test_expired_challenge_is_401(
    app: FastAPI, client: httpx.AsyncClient, node_id: str, agent: LocalAccount
) -> None:
    text = await challenge(client, node_id)
    await _age_challenge(app, node_id, timedelta(seconds=-1))

    response = await client.post(
        "/v1/agent/login", json={"node_id": node_id, "signature": personal_sign(agent, text)}
    )

    assert response.status_code == 401
