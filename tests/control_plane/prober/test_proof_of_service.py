"""Proof of service (issue 9, finding 2a): a probe counts only if the probed node's own agent
answered it. The attacker is operator B, who registers a node whose endpoint is node A's (or
relays A's answers, or replays them, or runs a plain web server) to earn A's uptime and latency.
Every probe goes over real HTTP to real servers; the signing side is the agent's own code."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.prober.models import ProbeSample
from control_plane.prober.proof import health_proof_message as verifier_message
from control_plane.prober.service import run_probe_round
from control_plane.prober.settings import ProberSettings
from node_agent.health import HealthProver, health_proof_message, start_health_server
from tests.control_plane.prober.health import health_server
from tests.control_plane.rewards.support import CHAIN_ID, Prober, add_node, new_address, transaction

LOCAL = ProberSettings(allow_private_targets=True, samples=2, timeout_seconds=1.0)


async def probe(sessions: async_sessionmaker[AsyncSession]) -> dict[str, ProbeSample]:
    """One round of the control plane's prober; the stored samples by node id."""
    async with transaction(sessions) as session:
        await run_probe_round(session, CHAIN_ID, Prober().account, LOCAL)
    async with transaction(sessions) as session:
        return {row.node_id: row for row in await session.scalars(select(ProbeSample))}


def agent() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@asynccontextmanager
async def fixed_answer(answer: dict[str, Any]) -> AsyncIterator[int]:
    """A server that answers every request 200 with `answer` (a recorded or forged reply)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(answer).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def tcp_relay(to_port: int) -> AsyncIterator[int]:
    """A port that forwards each connection, both ways, to 127.0.0.1:`to_port`."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65_536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", to_port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_node_registered_at_another_nodes_endpoint_is_down_as_wrong_node(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a_agent, b_agent = agent(), agent()
    async with health_server() as a_health:
        async with transaction(sessions) as session:
            a = await add_node(
                session, operator=new_address(), endpoint=a_health.endpoint, agent=a_agent.address
            )
            # Operator B claims A's endpoint with B's own agent key.
            b = await add_node(
                session, operator=new_address(), endpoint=a_health.endpoint, agent=b_agent.address
            )
        a_health.serve_as(a, a_agent)
        samples = await probe(sessions)
    assert (len(samples[a].rtt_us), samples[a].error) == (2, None)
    assert (samples[b].rtt_us, samples[b].error) == ([], "wrong_node")


async def test_a_node_relaying_to_another_nodes_agent_is_down_as_wrong_node(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The same with an endpoint of its own: B's port forwards every byte to A's agent (so a
    rule that endpoints be unique does not stop it; the proof does)."""
    a_agent, b_agent = agent(), agent()
    async with health_server() as a_health, tcp_relay(a_health.port) as relay_port:
        async with transaction(sessions) as session:
            a = await add_node(
                session, operator=new_address(), endpoint=a_health.endpoint, agent=a_agent.address
            )
            b = await add_node(
                session,
                operator=new_address(),
                endpoint=f"127.0.0.1:{relay_port}",
                agent=b_agent.address,
            )
        a_health.serve_as(a, a_agent)
        samples = await probe(sessions)
    assert a_health.requests == 4  # A's two probes and B's two, relayed
    assert (len(samples[a].rtt_us), samples[a].error) == (2, None)
    assert (samples[b].rtt_us, samples[b].error) == ([], "wrong_node")


async def test_a_relay_that_renames_the_node_is_down_as_bad_signature(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """B relays to A's agent but rewrites the node id (or signs with a key that is not B's
    on-chain agent): the signature does not recover to B's agent."""
    b_agent, impostor = agent(), agent()
    async with health_server() as relay:
        async with transaction(sessions) as session:
            b = await add_node(
                session, operator=new_address(), endpoint=relay.endpoint, agent=b_agent.address
            )
        relay.serve_as(b, impostor)
        samples = await probe(sessions)
    assert (samples[b].rtt_us, samples[b].error) == ([], "bad_signature")


async def test_a_plain_web_server_answering_200_is_down_as_unsigned(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with health_server() as plain:  # 200 {"status": "ok"}, no proof
        async with transaction(sessions) as session:
            node = await add_node(
                session, operator=new_address(), endpoint=plain.endpoint, agent=agent().address
            )
        samples = await probe(sessions)
    assert plain.requests == 2
    assert (samples[node].rtt_us, samples[node].error) == ([], "unsigned")


async def test_a_replayed_answer_is_down_as_stale_nonce(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """B recorded one genuine signed answer of its node and serves it forever (the node itself
    is gone): the nonce is not the prober's."""
    b_agent = agent()
    node_id = "0x" + "b2" * 32
    recorded = {"status": "ok", "proof": HealthProver(node_id, b_agent).proof("ab" * 16)}
    async with fixed_answer(recorded) as port:
        async with transaction(sessions) as session:
            await add_node(
                session,
                operator=new_address(),
                endpoint=f"127.0.0.1:{port}",
                agent=b_agent.address,
                node_id=node_id,
            )
        samples = await probe(sessions)
    assert (samples[node_id].rtt_us, samples[node_id].error) == ([], "stale_nonce")


async def test_the_real_agent_health_server_proves_its_node(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """node_agent's own server and prover, as Agent.run wires them, scores up; a request
    without a nonce (a monitoring check) still gets the plain answer."""
    node_agent_key = agent()
    node = "0x" + secrets.token_hex(32)
    prover = HealthProver(node, node_agent_key)
    server = await start_health_server(
        "127.0.0.1", 0, lambda: (200, {"status": "ok", "revision": 1, "peers": 0}), prover
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with transaction(sessions) as session:
            await add_node(
                session,
                operator=new_address(),
                endpoint=f"127.0.0.1:{port}",
                agent=node_agent_key.address,
                node_id=node,
            )
        samples = await probe(sessions)
        async with httpx.AsyncClient() as client:
            plain = await client.get(f"http://127.0.0.1:{port}/health")
            bad = await client.get(f"http://127.0.0.1:{port}/health", params={"nonce": "x"})
    finally:
        server.close()
        await server.wait_closed()
    assert (len(samples[node].rtt_us), samples[node].error) == (2, None)
    assert plain.json() == {"status": "ok", "revision": 1, "peers": 0}
    assert bad.status_code == 400


def test_the_agent_and_the_prober_sign_and_check_the_same_text() -> None:
    node_id = "0x" + "0A" * 32
    text = health_proof_message(node_id, "00" * 16, 1_767_225_600)
    assert text == (
        "nodus-health/1\nnode: 0x" + "0a" * 32 + "\nnonce: " + "00" * 16 + "\ntime: 1767225600"
    )
    assert verifier_message(node_id, "00" * 16, 1_767_225_600) == text
