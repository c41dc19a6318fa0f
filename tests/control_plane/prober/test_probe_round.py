"""The control plane's probe round against real HTTP health servers: one up (its answers signed
by its agent), one down, one answering 503, one too slow; signed samples stored and verified on
read."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.jobs import Services, run_exclusive
from control_plane.nodes.models import Node
from control_plane.prober import repository
from control_plane.prober.models import Prober as ProberRow
from control_plane.prober.models import ProbeSample
from control_plane.prober.probe import Target, health_url, probe_all
from control_plane.prober.service import (
    control_plane_prober,
    probe_round,
    run_probe_round,
    verified_samples,
)
from control_plane.prober.settings import ProberSettings
from control_plane.prober.signing import Sample, canonical_sample, sign_sample, verify_sample
from control_plane.settings import Settings
from tests.control_plane.metrics.traced import attributes, named, recording
from tests.control_plane.prober.health import closed_port, health_server
from tests.control_plane.rewards.support import CHAIN_ID, Prober, add_node, new_address, transaction

LOCAL = ProberSettings(allow_private_targets=True, samples=3, timeout_seconds=1.0)


async def stored(sessions: async_sessionmaker[AsyncSession]) -> dict[str, ProbeSample]:
    async with transaction(sessions) as session:
        rows = await session.scalars(select(ProbeSample))
        return {row.node_id: row for row in rows}


async def test_a_round_measures_live_and_dead_nodes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    prober = Prober()
    agent: LocalAccount = Account.create()
    async with health_server() as up, health_server(status=503) as sick:
        async with transaction(sessions) as session:
            live = await add_node(
                session, operator=new_address(), endpoint=up.endpoint, agent=agent.address
            )
            down = await add_node(
                session, operator=new_address(), endpoint=f"127.0.0.1:{closed_port()}"
            )
            unhealthy = await add_node(session, operator=new_address(), endpoint=sick.endpoint)
        up.serve_as(live, agent)
        async with transaction(sessions) as session:
            report = await run_probe_round(session, CHAIN_ID, prober.account, LOCAL)
        assert up.requests == 3  # three samples, over one kept-alive connection
        assert sick.requests == 3

    assert report.probed == 3
    assert report.answered == 1
    assert report.stored == 3
    rows = await stored(sessions)
    assert len(rows[live].rtt_us) == 3
    assert all(0 < rtt < 1_000_000 for rtt in rows[live].rtt_us)
    assert rows[live].error is None
    assert rows[down].rtt_us == []
    assert rows[down].error == "refused"
    assert rows[unhealthy].rtt_us == []
    assert rows[unhealthy].error == "http_error"
    assert {row.prober for row in rows.values()} == {prober.address}

    # Every stored sample verifies against the prober's key.
    start = datetime.fromtimestamp(report.round, UTC)
    async with transaction(sessions) as session:
        samples = await verified_samples(session, CHAIN_ID, start, start + timedelta(seconds=1))
    assert {s.node_id: s.answered for s in samples} == {live: True, down: False, unhealthy: False}


async def test_only_live_nodes_active_on_chain_are_probed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with health_server() as up:
        async with transaction(sessions) as session:
            active = await add_node(session, operator=new_address(), endpoint=up.endpoint)
            await add_node(session, operator=new_address(), endpoint=up.endpoint, active=False)
            await add_node(session, operator=new_address(), endpoint=up.endpoint, indexed=False)
            deleted = await add_node(session, operator=new_address(), endpoint=up.endpoint)
            await session.execute(
                update(Node).where(Node.id == deleted).values(deleted_at=datetime.now(UTC))
            )
        async with transaction(sessions) as session:
            report = await run_probe_round(session, CHAIN_ID, Prober().account, LOCAL)
    assert report.probed == 1
    assert set(await stored(sessions)) == {active}


async def test_a_silent_node_is_still_probed_and_fails(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """No heartbeat at all (it could be lying or dead): the prober does not care, it probes."""
    async with transaction(sessions) as session:
        node = await add_node(
            session, operator=new_address(), endpoint=f"127.0.0.1:{closed_port()}"
        )
    async with transaction(sessions) as session:
        await run_probe_round(session, CHAIN_ID, Prober().account, LOCAL)
    assert (await stored(sessions))[node].error == "refused"


async def test_private_addresses_are_refused_unless_allowed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with health_server() as up:
        async with transaction(sessions) as session:
            node = await add_node(session, operator=new_address(), endpoint=up.endpoint)
        strict = ProberSettings(allow_private_targets=False, timeout_seconds=1.0)
        async with transaction(sessions) as session:
            await run_probe_round(session, CHAIN_ID, Prober().account, strict)
        assert up.requests == 0  # never connected
    assert (await stored(sessions))[node].error == "private_address"


async def test_ipv6_wrapped_loopback_and_metadata_addresses_are_refused() -> None:
    """Issue 9, finding 4: IPv4-compatible, NAT64 and 6to4 forms of loopback and the metadata
    service passed as global. Refused before any connection."""
    async with health_server() as up:
        targets = [
            Target(str(i), f"http://[{host}]:{up.port}/health", new_address())
            for i, host in enumerate(
                ["::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::ffff:127.0.0.1"]
            )
        ]
        results = await probe_all(
            targets, attempts=1, request_timeout=1.0, concurrency=4, allow_private=False
        )
        assert up.requests == 0
    assert {r.error for r in results.values()} == {"private_address"}


async def test_a_slow_node_times_out() -> None:
    async with health_server(delay=2.0) as slow:
        results = await probe_all(
            [Target("n", health_url(slow.endpoint), new_address())],
            attempts=1,
            request_timeout=0.3,
            concurrency=4,
            allow_private=True,
        )
    assert results["n"].error == "timeout"
    assert results["n"].rtt_us == ()


async def test_a_node_trickling_its_answer_times_out_at_the_timeout() -> None:
    """The timeout bounds a whole attempt, not each read: a node that sends its headers and
    then a byte now and then (each read well within the timeout) would otherwise hold the
    round (and the on-demand probe's request) for as long as it likes."""
    handlers: set[asyncio.Task[None]] = set()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # A guard far above the 0.3 s the attempt may take (the trickle alone lasts 200 s).
        results = await asyncio.wait_for(
            probe_all(
                [Target("n", health_url(f"127.0.0.1:{port}"), new_address())],
                attempts=1,
                request_timeout=0.3,
                concurrency=1,
                allow_private=True,
            ),
            timeout=30,
        )
    finally:
        for handler in handlers:
            handler.cancel()
        server.close()
        await server.wait_closed()
    assert results["n"].error == "timeout"
    assert results["n"].rtt_us == ()


async def test_a_revoked_prober_stops_and_its_samples_stop_counting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    prober = Prober()
    async with health_server() as up:
        async with transaction(sessions) as session:
            await add_node(session, operator=new_address(), endpoint=up.endpoint)
        async with transaction(sessions) as session:
            first = await run_probe_round(session, CHAIN_ID, prober.account, LOCAL, now=1_000)
        async with transaction(sessions) as session:
            await repository.revoke_prober(session, prober.address)
        async with transaction(sessions) as session:
            second = await run_probe_round(session, CHAIN_ID, prober.account, LOCAL, now=2_000)
    assert first.stored == 1
    assert second.skipped == "revoked"
    assert second.probed == 0
    async with transaction(sessions) as session:
        start = datetime.fromtimestamp(0, UTC)
        assert await verified_samples(session, CHAIN_ID, start, start + timedelta(days=1)) == []


async def test_the_job_probes_as_the_control_plane(
    app: FastAPI,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What NODUS_PROBER_ALLOW_PRIVATE_TARGETS=true and NODUS_PROBER_TIMEOUT_SECONDS=1 give.
    local = settings.prober.model_copy(update={"allow_private_targets": True, "timeout_seconds": 1})
    services: Services = replace(
        app.state.services, settings=settings.model_copy(update={"prober": local})
    )
    agent: LocalAccount = Account.create()
    async with health_server() as up:
        async with transaction(sessions) as session:
            node = await add_node(
                session, operator=new_address(), endpoint=up.endpoint, agent=agent.address
            )
        up.serve_as(node, agent)
        assert await run_exclusive(services, "probe_round", probe_round)
    expected = control_plane_prober(settings, ProberSettings()).address.lower()
    rows = await stored(sessions)
    assert rows[node].prober == expected
    assert len(rows[node].rtt_us) == 3
    async with transaction(sessions) as session:
        row = await session.get(ProberRow, expected)
        assert row is not None
        assert row.name == "control-plane"
    # The same data key gives the same prober on every replica and after a restart.
    assert control_plane_prober(settings, ProberSettings()).address.lower() == expected
    # A configured key wins.
    configured = ProberSettings(key="0x" + "11" * 32)  # type: ignore[arg-type]
    assert control_plane_prober(settings, configured).address.lower() != expected

    off = local.model_copy(update={"enabled": False})  # NODUS_PROBER_ENABLED=false
    services = replace(services, settings=settings.model_copy(update={"prober": off}))
    async with transaction(sessions) as session:
        await probe_round(services, session)  # disabled: nothing happens
    assert len(await stored(sessions)) == 1


def test_signatures_bind_every_field_and_the_chain() -> None:
    prober = Prober()
    sample, signature = prober.sample("0x" + "ab" * 32, 1_767_225_600)
    assert verify_sample(sample, CHAIN_ID, signature)
    assert canonical_sample(sample, CHAIN_ID) == (
        '{"attempts":3,"chain_id":31337,"error":null,"node_id":"0x'
        + "ab" * 32
        + '","prober":"'
        + prober.address
        + '","round":1767225600,"rtt_us":[20000,21000,19000],"type":"nodus-probe/1"}'
    )
    for changed in (
        Sample(sample.prober, sample.node_id, sample.round + 1, 3, sample.rtt_us, None),
        Sample(sample.prober, sample.node_id, sample.round, 3, (1, 2, 3), None),
        Sample(sample.prober, sample.node_id, sample.round, 3, sample.rtt_us, "timeout"),
        Sample(sample.prober, "0x" + "cd" * 32, sample.round, 3, sample.rtt_us, None),
        Sample(new_address(), sample.node_id, sample.round, 3, sample.rtt_us, None),
    ):
        assert not verify_sample(changed, CHAIN_ID, signature)
    assert not verify_sample(sample, 1, signature)
    assert not verify_sample(sample, CHAIN_ID, "0x1234")
    with pytest.raises(ValueError, match="own samples"):
        sign_sample(Prober().account, sample, CHAIN_ID)


def test_the_health_url_rule() -> None:
    assert health_url("vpn.example.net:51820") == "http://vpn.example.net:51820/health"
    assert health_url("[2001:db8::1]:51820") == "http://[2001:db8::1]:51820/health"
    with pytest.raises(ValueError, match="endpoint"):
        health_url("no-port")


async def test_a_name_is_checked_by_every_address_it_resolves_to() -> None:
    """`localhost` resolves to loopback: refused before any connection unless allowed."""
    async with health_server() as up:
        results = await probe_all(
            [Target("n", f"http://localhost:{up.port}/health", new_address())],
            attempts=1,
            request_timeout=1.0,
            concurrency=1,
            allow_private=False,
        )
        assert up.requests == 0
    assert results["n"].error == "private_address"


async def test_redirects_are_not_followed() -> None:
    """A node answering 302 to somewhere else (the metadata service, a local port) is down;
    the prober never goes there."""
    async with health_server() as elsewhere:

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 302 Found\r\ncontent-length: 0\r\nconnection: close\r\n"
                + f"location: http://{elsewhere.endpoint}/health\r\n\r\n".encode()
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(redirect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            results = await probe_all(
                [Target("n", f"http://127.0.0.1:{port}/health", new_address())],
                attempts=1,
                request_timeout=1.0,
                concurrency=1,
                allow_private=True,
            )
        finally:
            server.close()
            await server.wait_closed()
        assert elsewhere.requests == 0
    assert results["n"].error == "http_error"


async def test_a_traced_round_shows_each_node_and_attempt_with_its_outcome(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    provider, exported = recording()
    agent: LocalAccount = Account.create()
    async with health_server() as up:
        async with transaction(sessions) as session:
            live = await add_node(
                session, operator=new_address(), endpoint=up.endpoint, agent=agent.address
            )
            down = await add_node(
                session, operator=new_address(), endpoint=f"127.0.0.1:{closed_port()}"
            )
        up.serve_as(live, agent)
        async with transaction(sessions) as session:
            await run_probe_round(
                session, CHAIN_ID, Prober().account, LOCAL, tracer=provider.get_tracer("test")
            )
    probes = {attributes(span)["nodus.node_id"]: span for span in named(exported, "probe")}
    assert attributes(probes[live])["nodus.probe.outcome"] == "ok"
    assert attributes(probes[live])["nodus.probe.answered"] == 3
    assert attributes(probes[down])["nodus.probe.outcome"] == "refused"
    tries = named(exported, "probe attempt")
    assert len(tries) == 6
    by_parent = {
        node: [
            span
            for span in tries
            if span.parent is not None and span.parent.span_id == probe.context.span_id
        ]
        for node, probe in probes.items()
    }
    assert [attributes(span)["nodus.probe.outcome"] for span in by_parent[down]] == ["refused"] * 3
    assert all(int(str(attributes(span)["nodus.probe.rtt_us"])) > 0 for span in by_parent[live])
