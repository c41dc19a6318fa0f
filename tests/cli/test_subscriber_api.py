"""`nodus nodes`, `status`, `devices` and `revoke` against the real control plane (uvicorn, real
PostgreSQL) and the real contracts: scores from the node list, latency measured by the client,
device statuses, revocation, and the exit codes 3 (not paid) and 4 (API unreachable)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from nodus_cli.support.exits import PaymentNeeded
from nodus_cli.support.session import ApiSession
from tests.cli.conftest import Cli, ServedControlPlane, flat
from tests.e2e.stack import free_tcp_port
from tests.support.builders import (
    MIN_STAKE,
    NDS,
    fresh_wallet,
    node_body,
    paying_subscriber,
    register_on_chain,
    sql,
    wallet_headers,
    wg_keys,
)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that never answers: a listener whose accept queue is full (never accepted),
    so the kernel drops further SYNs, as a filtered or overloaded host does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)  # the handshakes complete and fill the queue
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    """A TCP port that accepts (a node endpoint that answers with a SYN-ACK)."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


@dataclass
class Stack:
    """The chain, the served control plane and the settings it runs with."""

    w3: Web3Client
    deployment: Deployment
    settings: Settings
    api: ServedControlPlane

    @property
    def env(self) -> dict[str, str | None]:
        return {"NODUS_API_URL": self.api.url}

    async def add_node(
        self, endpoint: str, country: str, protocols: tuple[str, ...] = ("wireguard",)
    ) -> str:
        """A node registered on-chain by a fresh operator and then with the API."""
        operator = await fresh_wallet(self.w3, self.deployment, MIN_STAKE)
        node_id = await register_on_chain(self.w3, self.deployment, operator)
        async with httpx.AsyncClient(base_url=self.api.url) as http:
            response = await http.post(
                "/v1/nodes",
                json=node_body(node_id, protocols=protocols, endpoint=endpoint, country=country),
                headers=wallet_headers(self.settings, operator.address),
            )
        assert response.status_code == 201, response.text
        return node_id


@pytest.fixture
def stack(
    w3: Web3Client, deployment: Deployment, settings: Settings, served_api: ServedControlPlane
) -> Stack:
    return Stack(w3, deployment, settings, served_api)


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_nodes_lists_scores_and_the_latency_measured_here(
    cli: Cli, stack: Stack, listener: int, silent_port: int
) -> None:
    accepting = await stack.add_node(endpoint=f"127.0.0.1:{listener}", country="DE")
    refusing = await stack.add_node(
        f"127.0.0.1:{free_tcp_port()}", "FR", protocols=("wireguard", "openvpn")
    )
    silent = await stack.add_node(endpoint=f"127.0.0.1:{silent_port}", country="DE")
    # The scorer's write (another domain's job): the refusing node scored 0.9, the silent 0.5.
    for node_id, ppm in ((refusing, 900_000), (silent, 500_000)):
        await sql(
            stack.settings,
            "UPDATE nodes SET score_ppm = :ppm, score_epoch = 1 WHERE id = :id",
            ppm=ppm,
            id=node_id,
        )
    env = stack.env

    by_score = as_json(await cli("nodes", "--json", env=env))["items"]
    assert [n["id"] for n in by_score] == [refusing, silent, accepting]
    assert [n["score"] for n in by_score] == [0.9, 0.5, None]
    latency = {n["id"]: n["latency_ms"] for n in by_score}
    assert isinstance(latency[accepting], float)  # a SYN-ACK
    assert isinstance(latency[refusing], float)  # an RST is an answer too
    assert latency[silent] is None

    by_latency = as_json(await cli("nodes", "--json", "--sort", "latency", env=env))["items"]
    assert by_latency[-1]["id"] == silent
    german = as_json(await cli("nodes", "--json", "--country", "de", env=env))["items"]
    assert {n["id"] for n in german} == {accepting, silent}
    openvpn = as_json(await cli("nodes", "--json", "--protocol", "openvpn", env=env))["items"]
    assert [n["id"] for n in openvpn] == [refusing]

    table = await cli("nodes", env=env)
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if line.endswith(refusing))
    assert row.split()[:4] == ["FR", "wireguard,openvpn", "no", "0.900"]
    bad = await cli("nodes", "--country", "Germany", env=env)
    assert bad.exit_code == 2


async def test_status_devices_and_revoke_for_a_paying_wallet(
    cli: Cli, stack: Stack, listener: int
) -> None:
    node_id = await stack.add_node(endpoint=f"127.0.0.1:{listener}", country="DE")
    subscriber = await paying_subscriber(stack.w3, stack.deployment, months=1)
    async with httpx.AsyncClient(base_url=stack.api.url) as http:
        created = await http.post(
            "/v1/configs",
            json={"node_id": node_id, "protocol": "wireguard", "public_key": wg_keys().public},
            headers=wallet_headers(stack.settings, subscriber.address),
        )
    assert created.status_code == 201, created.text
    config_id = created.json()["id"]
    env = stack.env

    status = as_json(await cli("status", "--json", key=subscriber, env=env))
    assert status["subscription"]["active"] is True
    assert status["subscription"]["expiring_soon"] is False
    assert status["tunnel"] is None
    assert [(d["id"], d["status"]) for d in status["devices"]] == [(config_id, "active")]
    shown = await cli("status", key=subscriber, env=env)
    assert shown.exit_code == 0, shown.output
    assert "subscription: active until" in shown.stdout
    assert "warning" not in shown.stdout

    listed = as_json(await cli("devices", "--json", key=subscriber, env=env))["items"]
    assert [(d["id"], d["status"]) for d in listed] == [(config_id, "active")]

    revoked = await cli("revoke", config_id, key=subscriber, env=env)
    assert revoked.exit_code == 0, revoked.output
    assert as_json(await cli("devices", "--json", key=subscriber, env=env))["items"] == []
    everything = as_json(await cli("devices", "--all", "--json", key=subscriber, env=env))
    assert [(d["id"], d["status"]) for d in everything["items"]] == [(config_id, "revoked")]

    again = await cli("revoke", config_id, key=subscriber, env=env)
    assert again.exit_code == 1
    assert "next: list yours: nodus devices --all" in flat(again)
    nonsense = await cli("revoke", "not-an-id", key=subscriber, env=env)
    assert nonsense.exit_code == 2


async def test_unpaid_is_exit_code_3_with_the_command_and_an_unreachable_api_is_4(
    cli: Cli, stack: Stack, listener: int
) -> None:
    unpaid: LocalAccount = await fresh_wallet(stack.w3, stack.deployment, 100 * NDS)
    env = stack.env
    status = await cli("status", key=unpaid, env=env)
    assert status.exit_code == 3
    assert "subscription: never paid" in status.stdout
    assert "next: nodus subscribe --months 1" in flat(status)

    # The session maps the API's 402 (a config asked for while unpaid) to the same exit.
    node_id = await stack.add_node(endpoint=f"127.0.0.1:{listener}", country="DE")
    body = {"node_id": node_id, "protocol": "wireguard", "public_key": wg_keys().public}
    xdg = cli.env["XDG_CONFIG_HOME"]
    assert xdg is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", xdg)
        patch.setenv("NODUS_PRIVATE_KEY", unpaid.key.hex())
        async with ApiSession.open(stack.api.url, None) as api:
            with pytest.raises(PaymentNeeded) as refused:
                await api.post("/v1/configs", body)
    assert refused.value.exit_code == 3
    assert refused.value.next_step == "nodus subscribe --months 1"

    down = await cli(
        "status", key=unpaid, env={"NODUS_API_URL": f"http://127.0.0.1:{free_tcp_port()}"}
    )
    assert down.exit_code == 4
    assert "cannot reach the Nodus API" in flat(down)
