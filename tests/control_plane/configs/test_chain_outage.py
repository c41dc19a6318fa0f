"""The database is the read model of the chain: with the chain RPC unreachable (a reader
pointed at a port nothing listens on, so every call fails at the network), a subscriber the
indexer's mirror knows as paid still gets a config on a node the mirror knows as Active, the
node list answers, and the node's agent gets the new peer."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from control_plane.app import create_app
from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.indexer.sync import sync_chain
from control_plane.jobs import Services, run_exclusive
from control_plane.settings import Settings
from tests.support.builders import node_headers, wallet_headers, wg_keys


def dead_rpc_url() -> str:
    """A loopback URL whose port was free a moment ago: every call is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def unreachable_chain_client(
    settings: Settings, deployment: Deployment
) -> AsyncIterator[httpx.AsyncClient]:
    """A replica whose chain RPC is down (its own reader; the same database)."""
    chain = Web3ChainReader.connect(dead_rpc_url(), deployment, timeout=2)
    application: FastAPI = create_app(settings, chain=chain)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    await chain.aclose()


async def test_issuance_node_list_and_feed_answer_from_the_mirror_while_the_chain_is_down(
    app: FastAPI,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    unreachable_chain_client: httpx.AsyncClient,
) -> None:
    services: Services = app.state.services  # the replica that reaches the chain indexes it
    assert await run_exclusive(services, "chain_sync", sync_chain)
    http = unreachable_chain_client
    assert (await http.get("/readyz")).json()["checks"]["chain"] is False

    keys = wg_keys()
    issued = await http.post(
        "/v1/configs",
        json={"node_id": node, "protocol": "wireguard", "public_key": keys.public},
        headers=wallet_headers(settings, subscriber.address),
    )
    assert issued.status_code == 201, issued.text

    listed = await http.get("/v1/nodes", headers=wallet_headers(settings, subscriber.address))
    assert listed.status_code == 200, listed.text
    assert node.lower() in [n["id"].lower() for n in listed.json()["items"]]

    feed = await http.get("/v1/agent/peers", headers=node_headers(settings, node))
    assert feed.status_code == 200, feed.text
    assert [p["public_key"] for p in feed.json()["peers"]] == [keys.public]


async def test_a_subscriber_the_mirror_does_not_know_is_refused_while_the_chain_is_down(
    app: FastAPI,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    unreachable_chain_client: httpx.AsyncClient,
) -> None:
    # Not indexed yet: the mirror says never paid, the one chain read fails, so the answer is
    # the chain's outage (retry), never a config for an unknown payment nor a cached "unpaid".
    issued = await unreachable_chain_client.post(
        "/v1/configs",
        json={"node_id": node, "protocol": "wireguard", "public_key": wg_keys().public},
        headers=wallet_headers(settings, subscriber.address),
    )
    assert issued.status_code == 503, issued.text
    assert issued.json()["error"]["code"] == "chain_unavailable"
