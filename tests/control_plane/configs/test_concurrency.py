"""Address allocation under concurrency: the database's unique indexes decide, so 200 concurrent
requests get 200 distinct addresses, on one replica and on two interleaved replicas (with a pool
small enough that collisions, and so retries, are certain)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.configs import service
from control_plane.configs.repository import ConfigRepository, Inserted
from control_plane.settings import Settings
from control_plane.tunnel.addresses import Pools
from tests.control_plane.configs.test_issue import issue, openvpn, wireguard
from tests.support.builders import (
    ec_key,
    make_csr,
    node_body,
    paying_subscriber,
    post_node,
    register_on_chain,
    sql,
)

REQUESTS = 200
SUBSCRIBERS = 8

# 25 simultaneous issues per wallet queue on that wallet's lock (in service the per-wallet rate
# limit, raised by these tests, prevents it); on a loaded 2-core machine the last one can wait
# longer than the default statement timeout, which would answer it 503 database_unavailable.
pytestmark = pytest.mark.database_statement_timeout_seconds(60)


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def paying_subscribers(w3: Web3Client, deployment: Deployment) -> list[LocalAccount]:
    return [await paying_subscriber(w3, deployment) for _ in range(SUBSCRIBERS)]


async def check_distinct(
    settings: Settings, node_id: str, responses: list[httpx.Response], pool: str | None = None
) -> None:
    assert [r.status_code for r in responses] == [201] * REQUESTS, {
        r.text for r in responses if r.status_code != 201
    }
    ipv4 = {ipaddress.ip_interface(r.json()["address"][0]).ip for r in responses}
    ipv6 = {ipaddress.ip_interface(r.json()["address"][1]).ip for r in responses}
    assert len(ipv4) == REQUESTS
    assert len(ipv6) == REQUESTS
    if pool is not None:
        assert all(address in ipaddress.ip_network(pool) for address in ipv4)
    ((live, distinct, revision),) = await sql(
        settings,
        "SELECT count(*), count(DISTINCT c.ipv4), n.revision FROM device_configs c "
        "JOIN nodes n ON n.id = c.node_id WHERE c.node_id = :id AND c.revoked_at IS NULL "
        "GROUP BY n.revision",
        id=node_id,
    )
    assert live == distinct == REQUESTS
    assert revision == REQUESTS + 1  # the registration's bump, then one per issued config


@pytest.mark.device_limit(1000)
@pytest.mark.config_changes_per_minute(1000)
async def test_200_concurrent_requests_get_200_distinct_addresses(
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    node: str,
) -> None:
    subscribers = await paying_subscribers(w3, deployment)
    bodies = [
        openvpn(node, make_csr(ec_key())) if i % 4 == 0 else wireguard(node, _random_key())
        for i in range(REQUESTS)
    ]

    responses = await asyncio.gather(
        *(
            issue(client, settings, subscribers[i % SUBSCRIBERS], body)
            for i, body in enumerate(bodies)
        )
    )

    await check_distinct(settings, node, list(responses))


@pytest.mark.device_limit(1000)
@pytest.mark.config_changes_per_minute(1000)
async def test_two_replicas_interleaved_share_a_small_pool_without_collisions(
    client: httpx.AsyncClient,
    second_client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
) -> None:
    """A /23's WireGuard half (a /24) holds 253 devices: 200 of them allocated at once from two
    replicas collide often, and each collision is retried with another address."""
    node_id = await register_on_chain(w3, deployment, operator)
    body = node_body(node_id, protocols=("wireguard",), ipv4_pool="10.250.6.0/23")
    assert (await post_node(client, settings, operator, body)).status_code == 201
    subscribers = await paying_subscribers(w3, deployment)
    replicas = (client, second_client)

    responses = await asyncio.gather(
        *(
            issue(
                replicas[i % 2],
                settings,
                subscribers[i % SUBSCRIBERS],
                wireguard(node_id, _random_key()),
            )
            for i in range(REQUESTS)
        )
    )

    await check_distinct(settings, node_id, list(responses), pool="10.250.6.0/24")


@pytest.mark.device_limit(3)
async def test_the_device_limit_holds_under_concurrency(
    client: httpx.AsyncClient,
    second_client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
) -> None:
    replicas = (client, second_client)
    responses = await asyncio.gather(
        *(
            issue(replicas[i % 2], settings, subscriber, wireguard(node, _random_key()))
            for i in range(12)
        )
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [409] * 9


async def test_a_taken_pick_is_retried_with_another_address(
    client: httpx.AsyncClient,
    settings: Settings,
    node: str,
    subscriber: LocalAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first picks are only an address another config holds (as a concurrent request would
    have just taken it): the insert takes nothing, the request goes on with other addresses."""
    first = (await issue(client, settings, subscriber, wireguard(node))).json()
    taken = ipaddress.ip_interface(first["address"][0]).ip
    picks: list[list[int]] = []
    original = service._candidates

    async def colliding(
        configs: ConfigRepository, node_id: str, pools: Pools, *, scan: bool
    ) -> list[int]:
        if not picks:
            picks.append([pools.index_of(str(taken))])
        else:
            picks.append(await original(configs, node_id, pools, scan=scan))
        return picks[-1]

    monkeypatch.setattr(service, "_candidates", colliding)
    tries: list[Inserted | None] = []
    original_insert = ConfigRepository.insert_at_free_address

    async def recording(
        self: ConfigRepository,
        values: dict[str, Any],
        networks: tuple[str, str],
        indexes: Sequence[int],
        device_limit: int,
    ) -> Inserted | None:
        tries.append(await original_insert(self, values, networks, indexes, device_limit))
        return tries[-1]

    monkeypatch.setattr(ConfigRepository, "insert_at_free_address", recording)

    second = await issue(client, settings, subscriber, wireguard(node))

    assert second.status_code == 201, second.text
    assert len(tries) == 2
    assert tries[0] is None
    assert tries[1] is not None
    assert ipaddress.ip_interface(second.json()["address"][0]).ip != taken
    ((live,),) = await sql(
        settings,
        "SELECT count(*) FROM device_configs WHERE node_id = :id AND revoked_at IS NULL",
        id=node,
    )
    assert live == 2
