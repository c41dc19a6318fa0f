"""The agent loop against the fake control plane (real HTTP) with a fake backend: applying and
persisting sets, refusing bad payloads, fail-static restarts, expiry without the control plane,
apply failures, heartbeats, metrics and the health endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from control_plane.prober.probe import Target, probe_all
from node_agent import __version__
from node_agent.backends import PeerStats
from node_agent.config import AgentConfig
from node_agent.health import client_key as health_client_key
from node_agent.peers import Peer
from node_agent.state import AppliedState, StateStore
from node_agent.validate import parse_peers
from tests.node_agent.conftest import FakeBackend, running_agent, until
from tests.node_agent.fake_control_plane import FakeControlPlane, free_port, wg_peer

Config = Callable[..., AgentConfig]


def keys(*peers: dict[str, object]) -> set[str]:
    return {str(peer["public_key"]) for peer in peers}


def core(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """A health answer without its verdict fields."""
    code, body = answer
    return code, {key: body[key] for key in ("status", "revision", "peers")}


async def test_applies_each_new_set_and_persists_it(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    a, b = wg_peer(2), wg_peer(3)
    fake.set_peers([a, b])
    config = make_config(fake.url)
    store = StateStore(config.state_dir)

    async with running_agent(config, account, backend) as agent:
        await until(lambda: backend.keys() == keys(a, b))
        await until(lambda: agent.poll_since == 1)
        saved = store.load(config.pools)
        assert saved is not None
        assert saved.revision == 1
        assert len(saved.peers) == 2

        fake.set_peers([a])
        await until(lambda: backend.keys() == keys(a))
        await until(lambda: (store.load(config.pools) or saved).revision == 2)
        # Nothing changed afterwards: the long-polls come back `changed: false`, nothing applied.
        applies = len(backend.applies)
        await until(lambda: len([p for p in fake.polls if p["since"] == 2]) >= 2, 10)
        assert len(backend.applies) == applies
        status = store.load_status()
        assert status is not None
        assert status["revision"] == 2
        assert status["peers"] == 1
        assert status["fail_static"] is False
        assert status["last_sync_at"] is not None
    assert fake.polls[0] == {"since": None, "wait": 2}


async def test_a_bad_payload_is_refused_and_the_last_good_set_stays(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    good = wg_peer(2)
    fake.set_peers([good])
    config = make_config(fake.url, POOLS_IPV4="10.8.0.0/16")
    store = StateStore(config.state_dir)

    async with running_agent(config, account, backend) as agent:
        await until(lambda: agent.poll_since == 1)
        outside = wg_peer(3)
        outside["allowed_ips"] = ["10.9.0.3/32"]
        fake.set_peers([good, outside])  # revision 2: one peer outside the pool

        await until(lambda: agent.rejected is not None)
        assert backend.keys() == keys(good)
        assert len(backend.applies) == 1
        assert (store.load(config.pools) or AppliedState(0, (), datetime.now(UTC))).revision == 1
        status = store.load_status()
        assert status is not None
        assert status["rejected"]["revision"] == 2
        assert "outside the node's pool" in status["rejected"]["reason"]
        assert status["revision"] == 1
        # It waits past the refused revision instead of fetching it again and again.
        await until(lambda: agent.poll_since == 2)
        polls = len(fake.polls)
        await asyncio.sleep(0.5)
        assert len(fake.polls) - polls <= 1  # parked in a long-poll, not hammering

        fixed = wg_peer(4)
        fake.set_peers([good, fixed])  # revision 3 is fine again
        await until(lambda: backend.keys() == keys(good, fixed))
        assert agent.rejected is None
    assert len(fake.polls) < 20


class OrderedBackend(FakeBackend):
    """Records how many requests the control plane had seen at each apply."""

    def __init__(self, fake: FakeControlPlane) -> None:
        super().__init__()
        self.fake = fake
        self.requests_seen: list[int] = []

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        self.requests_seen.append(len(self.fake.requests))
        await super().apply(peers)


async def test_a_restart_serves_the_persisted_set_before_reaching_the_control_plane(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount
) -> None:
    config = make_config(fake.url)
    live, lapsed = wg_peer(2), wg_peer(3, expires_in=-60)
    StateStore(config.state_dir).ensure_directory()
    StateStore(config.state_dir).save(
        AppliedState(7, parse_peers([live, lapsed], config.pools), datetime.now(UTC))
    )
    fake.revision = 7  # the control plane has nothing newer
    backend = OrderedBackend(fake)

    async with running_agent(config, account, backend) as agent:
        await until(lambda: len(backend.applies) >= 1)
        assert backend.requests_seen[0] == 0  # applied before any request
        assert backend.keys() == keys(live)  # minus what expired while it was down
        await until(lambda: agent.synced)
        assert fake.polls[0]["since"] == 7
        assert len(backend.applies) == 1  # the control plane confirmed: nothing to redo
        assert core(agent.health()) == (200, {"status": "ok", "revision": 7, "peers": 1})


async def test_with_the_control_plane_down_a_restart_is_fail_static(
    make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    config = make_config(f"http://127.0.0.1:{free_port()}")
    peer = wg_peer(2)
    StateStore(config.state_dir).ensure_directory()
    StateStore(config.state_dir).save(
        AppliedState(4, parse_peers([peer], config.pools), datetime.now(UTC))
    )

    async with running_agent(config, account, backend) as agent:
        await until(lambda: backend.keys() == keys(peer))
        await until(lambda: agent.unreachable_since is not None)
        assert core(agent.health()) == (200, {"status": "fail-static", "revision": 4, "peers": 1})
        assert agent.health()[1]["reason"] == "control_plane_unreachable"
        assert agent.health()[1]["verdict"] == "warn"
        status = StateStore(config.state_dir).load_status()
        assert status is not None
        assert status["fail_static"] is True
        assert "unreachable" in status["unreachable_reason"]


async def test_expired_peers_go_on_time_while_the_control_plane_is_down_then_it_resyncs(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    paying, lapsing = wg_peer(2), wg_peer(3, expires_in=2.0)
    fake.set_peers([paying, lapsing])
    config = make_config(fake.url)

    async with running_agent(config, account, backend) as agent:
        await until(lambda: backend.keys() == keys(paying, lapsing))
        await fake.stop()
        await until(lambda: agent.fail_static, 5)
        assert backend.keys() == keys(paying, lapsing)  # fail-static: the set stays

        expires_at = datetime.fromisoformat(str(lapsing["expires_at"]))
        await until(lambda: backend.keys() == keys(paying), 5)
        late = datetime.now(UTC) - expires_at
        assert timedelta(0) <= late < timedelta(seconds=1), late  # on time, by the timer
        assert agent.fail_static

        fake.set_peers([paying])  # the control plane comes back with the lapse recorded
        await fake.start()
        await until(lambda: agent.synced and agent.applied_revision == 2, 10)
        assert not agent.fail_static
        assert agent.health()[1]["status"] == "ok"


async def test_an_apply_failure_is_logged_with_its_cause_reported_and_retried(
    fake: FakeControlPlane,
    make_config: Config,
    account: LocalAccount,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = wg_peer(2)
    fake.set_peers([peer])
    backend.fail = "wg: Unable to modify interface"
    config = make_config(fake.url)

    caplog.set_level(logging.INFO, logger="nodus.agent")
    async with running_agent(config, account, backend) as agent:
        await until(lambda: agent.apply_error is not None)
        assert core(agent.health()) == (503, {"status": "error", "revision": None, "peers": 0})
        body = agent.health()[1]
        assert (body["verdict"], body["reason"]) == ("fail", "apply_failed")
        assert "Unable to modify" in body["detail"]
        assert "expiry.check_seconds" in body["fix"]
        status = StateStore(config.state_dir).load_status()
        assert status is not None
        assert "Unable to modify" in status["apply_error"]
        assert status["reason"] == "apply_failed"
        # The log says it, with its cause (not only `status`).
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("apply of revision 1 failed" in e and "Unable to modify" in e for e in errors)
        assert any("verdict fail (apply_failed)" in e for e in errors)
        assert StateStore(config.state_dir).load(config.pools) is None  # not persisted

        backend.fail = None
        await until(lambda: backend.keys() == keys(peer))
        await until(lambda: agent.poll_since == 1)
        assert agent.health()[0] == 200


async def test_heartbeats_report_version_revision_active_peers_and_totals(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    fake.set_peers([wg_peer(2)])
    now = time.time()
    backend.peer_stats = [
        PeerStats("a", now - 10, 100, 200),
        PeerStats("b", now - 3600, 5, 6),  # handshake long ago: not active
        PeerStats("c", None, 0, 0),
    ]
    config = make_config(fake.url, REPORTS_HEARTBEAT_SECONDS="0.2")

    async with running_agent(config, account, backend) as agent:
        await until(lambda: agent.applied_revision == 1)
        await until(lambda: any(h["applied_revision"] == 1 for h in fake.heartbeats))

    beat = next(h for h in fake.heartbeats if h["applied_revision"] == 1)
    assert beat == {
        "agent_version": __version__,
        "applied_revision": 1,
        "active_peers": 1,
        "rx_bytes_total": 105,
        "tx_bytes_total": 206,
    }


async def test_metrics_carry_only_the_peers_that_changed(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    config = make_config(fake.url)
    now = time.time()
    backend.peer_stats = [PeerStats("a", now, 1, 2), PeerStats("b", None, 0, 0)]

    async with running_agent(config, account, backend) as agent:
        assert await agent.send_metrics() == 1  # "b" never moved
        assert await agent.send_metrics() == 0  # nothing changed
        backend.peer_stats = [PeerStats("a", now, 1, 2), PeerStats("b", now, 3, 4)]
        assert await agent.send_metrics() == 1

    first, second = fake.metrics
    assert first["peers"] == [
        {
            "public_key": "a",
            "last_handshake_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "rx_bytes": 1,
            "tx_bytes": 2,
        }
    ]
    assert [p["public_key"] for p in second["peers"]] == ["b"]


async def test_the_health_endpoint_answers_status_revision_and_peers(
    fake: FakeControlPlane, make_config: Config, account: LocalAccount, backend: FakeBackend
) -> None:
    fake.set_peers([wg_peer(2), wg_peer(3)])
    port = free_port()
    config = make_config(fake.url, HEALTH_LISTEN=f"127.0.0.1:{port}")

    async with running_agent(config, account, backend) as agent, httpx.AsyncClient() as http:
        await until(lambda: agent.synced and agent.applied_revision == 1)
        response = await http.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        assert core((200, response.json())) == (200, {"status": "ok", "revision": 1, "peers": 2})
        assert response.json()["reason"] in ("ok", "no_handshakes")  # the fake has no stats
        assert response.json()["fix"]
        assert (await http.get(f"http://127.0.0.1:{port}/other")).status_code == 404
        assert (await http.post(f"http://127.0.0.1:{port}/health")).status_code == 405


async def test_the_running_agent_proves_its_node_to_the_prober(
    fake: FakeControlPlane,
    make_config: Config,
    account: LocalAccount,
    backend: FakeBackend,
    node_id: str,
) -> None:
    """Proof of service (issue 9, 2a): the agent signs each nonce with its agent key; the real
    prober counts it for this node and for no other; signing is rate limited per client."""
    fake.set_peers([wg_peer(2)])
    port = free_port()
    config = make_config(fake.url, HEALTH_LISTEN=f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/health"

    async with running_agent(config, account, backend) as agent, httpx.AsyncClient() as http:
        await until(lambda: agent.synced and agent.applied_revision == 1)
        other_node = "0x" + "ee" * 32
        results = await probe_all(
            [Target(node_id, url, account.address), Target(other_node, url, account.address)],
            attempts=3,
            request_timeout=2.0,
            concurrency=1,
            allow_private=True,
        )
        assert (len(results[node_id].rtt_us), results[node_id].error) == (3, None)
        assert (results[other_node].rtt_us, results[other_node].error) == ((), "wrong_node")

        answer = (await http.get(url, params={"nonce": "0f" * 16})).json()
        assert answer["proof"]["node_id"] == node_id
        statuses = [
            (await http.get(url, params={"nonce": "0f" * 16})).status_code for _ in range(30)
        ]
        assert 429 in statuses


def test_signing_budgets_are_per_ipv4_address_and_per_ipv6_64() -> None:
    assert health_client_key("203.0.113.7") == "203.0.113.7"
    assert health_client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert health_client_key("2001:db8:1:2::7") == health_client_key("2001:db8:1:2:ffff::1")
    assert health_client_key("2001:db8:1:2::7") != health_client_key("2001:db8:1:3::7")
