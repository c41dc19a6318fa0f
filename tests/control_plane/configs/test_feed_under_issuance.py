"""Issuance takes no node-wide lock before its COMMIT: 200 concurrent issues on one node
still give 200 distinct addresses, one revision each (announced once, no gap, no repeat), and an
agent long-polling meanwhile sees the revision only grow, never a peer set behind its revision,
and finally every peer."""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from control_plane.agent.feed import asyncpg_dsn
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.revisions import PEERS_CHANNEL
from control_plane.settings import Settings
from tests.control_plane.configs.test_concurrency import (
    REQUESTS,
    SUBSCRIBERS,
    check_distinct,
    paying_subscribers,
)
from tests.control_plane.configs.test_issue import issue, wireguard
from tests.support.builders import node_headers

pytestmark = pytest.mark.database_statement_timeout_seconds(60)


@dataclass
class AgentView:
    """What a long-polling agent saw: each answer's revision and its peers' keys."""

    answers: list[tuple[int, set[str]]] = field(default_factory=list)


async def _poll(
    client: httpx.AsyncClient, headers: dict[str, str], since: int, until: int, seen: AgentView
) -> None:
    while since < until:
        response = await client.get(
            "/v1/agent/peers", params={"since": since, "wait": 5}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if body["changed"]:
            seen.answers.append((body["revision"], {p["public_key"] for p in body["peers"]}))
        since = body["revision"]


@pytest.mark.device_limit(1000)
@pytest.mark.config_changes_per_minute(1000)
async def test_200_concurrent_issues_on_one_node_each_get_a_revision_the_agent_sees(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
) -> None:
    subscribers = await paying_subscribers(w3, deployment)
    agent = node_headers(settings, node)
    start = (await client.get("/v1/agent/peers", headers=agent)).json()["revision"]
    announced: list[str] = []
    listener = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    await listener.add_listener(PEERS_CHANNEL, lambda *args: announced.append(args[3]))
    keys = [base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(REQUESTS)]
    seen = AgentView()
    try:
        poller = asyncio.create_task(_poll(client, agent, start, start + REQUESTS, seen))
        responses = await asyncio.gather(
            *(
                issue(client, settings, subscribers[i % SUBSCRIBERS], wireguard(node, key))
                for i, key in enumerate(keys)
            )
        )
        await asyncio.wait_for(poller, 30)
        await asyncio.sleep(0.5)  # the last NOTIFYs reach the listener
    finally:
        await listener.close()

    await check_distinct(settings, node, list(responses))  # the revision is one per issue
    # Every issue's bump was announced once: each revision after the start, none twice.
    ours = [int(p.rpartition(":")[2]) for p in announced if p.startswith(f"{node}:")]
    assert sorted(ours) == list(range(start + 1, start + REQUESTS + 1))
    # The agent's view: revisions only grow; a set holds at least the configs its revision
    # counts (a revision is never seen before its data); the last set is every peer.
    revisions = [r for r, _ in seen.answers]
    assert revisions == sorted(set(revisions))
    assert all(len(peers) >= r - start for r, peers in seen.answers)
    assert seen.answers[-1] == (start + REQUESTS, set(keys))


async def test_a_deletion_committed_between_an_issue_and_its_commit_revokes_the_config(
    settings: Settings, node: str
) -> None:
    """The issue's statement saw the node live; the deletion (which revokes the node's configs)
    commits before the issue does and cannot see the uncommitted config: the bump at the
    issue's commit finds the node deleted and revokes it, so no config outlives its node."""
    dsn = asyncpg_dsn(settings.database_url)
    issuing, deleting = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        (revision,) = await issuing.fetchrow("SELECT revision FROM nodes WHERE id = $1", node)
        transaction = issuing.transaction()
        await transaction.start()
        config_id = await issuing.fetchval(
            "INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key, ipv4, ipv6)"
            " VALUES (gen_random_uuid(), $1, $2, 'wireguard', $3, '10.77.0.2', 'fd77::2')"
            " RETURNING id",
            node,
            "0x" + "ab" * 20,
            base64.b64encode(secrets.token_bytes(32)).decode(),
        )
        await issuing.execute(
            "INSERT INTO revision_bumps (node_id, config_id) VALUES ($1, $2)", node, config_id
        )
        async with deleting.transaction():
            await deleting.execute("UPDATE nodes SET deleted_at = now() WHERE id = $1", node)
            await deleting.execute(
                "UPDATE device_configs SET revoked_at = now() WHERE node_id = $1"
                " AND revoked_at IS NULL",
                node,
            )
        await transaction.commit()
        revoked = await issuing.fetchval(
            "SELECT revoked_at FROM device_configs WHERE id = $1", config_id
        )
        (after,) = await issuing.fetchrow("SELECT revision FROM nodes WHERE id = $1", node)
        pending = await issuing.fetchval("SELECT count(*) FROM revision_bumps")
    finally:
        await issuing.close()
        await deleting.close()

    assert revoked is not None
    assert after == revision + 1
    assert pending == 0
