"""The probe API: targets, signed samples from external probers, the samples of a node, and the
probers' allow-list; plus `nodus prober` posting real measurements through it."""

from __future__ import annotations

import time
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.prober.models import ProbeSample
from control_plane.prober.router import get_prober_settings
from control_plane.prober.schemas import MAX_RTT_US
from control_plane.prober.settings import ProberSettings
from control_plane.prober.signing import Sample, sign_sample
from control_plane.settings import Settings
from nodus_cli.prober import prober_app as prober_cli
from nodus_cli.prober.rounds import POST_CHUNK, ProberState, run_once
from tests.control_plane.prober.health import closed_port, health_server
from tests.control_plane.rewards.support import Prober, add_node, new_address, transaction


def headers(settings: Settings, *roles: Role) -> dict[str, str]:
    principal = Principal(subject=new_address(), roles=frozenset({Role.SUBSCRIBER, *roles}))
    return {"authorization": f"Bearer {issue_access_token(settings, principal)}"}


def body(signer: Prober, node_id: str, round_at: int, **changes: Any) -> dict[str, Any]:
    sample, signature = signer.sample(node_id, round_at)
    item: dict[str, Any] = {
        "prober": sample.prober,
        "node_id": sample.node_id,
        "round": sample.round,
        "attempts": sample.attempts,
        "rtt_us": list(sample.rtt_us),
        "error": sample.error,
        "signature": signature,
    }
    item.update(changes)
    return item


async def test_an_allow_listed_prober_posts_signed_samples(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
        node = await add_node(session, operator=new_address())
    now = int(time.time())
    unknown = "0x" + "ef" * 32
    samples = [body(prober, node, now - 60), body(prober, node, now), body(prober, unknown, now)]

    first = await api.post("/v1/probes", json={"samples": samples})
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "duplicates": 0, "unknown_nodes": [unknown]}
    again = await api.post("/v1/probes", json={"samples": samples[:2]})
    assert again.json() == {"accepted": 0, "duplicates": 2, "unknown_nodes": []}

    listed = await api.get("/v1/probes", params={"node_id": node, "limit": 1})
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [(s["round"], s["verified"]) for s in page["items"]] == [(now, True)]
    rest = await api.get("/v1/probes", params={"node_id": node, "cursor": page["next_cursor"]})
    assert [s["round"] for s in rest.json()["items"]] == [now - 60]
    assert rest.json()["next_cursor"] is None
    assert (await api.get("/v1/probes", params={"node_id": unknown})).status_code == 404


async def test_samples_that_are_not_trustworthy_are_refused(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    allowed, stranger = Prober(), Prober()
    async with transaction(sessions) as session:
        await allowed.allow(session)
        node = await add_node(session, operator=new_address())
    now = int(time.time())

    async def post(*items: dict[str, Any]) -> httpx.Response:
        return await api.post("/v1/probes", json={"samples": list(items)})

    not_listed = await post(body(stranger, node, now))
    assert not_listed.status_code == 403
    assert stranger.address in not_listed.json()["error"]["message"]
    forged = await post(body(allowed, node, now, rtt_us=[1, 1, 1]))  # changed after signing
    assert forged.status_code == 401
    impersonated = await post(body(stranger, node, now, prober=allowed.address))
    assert impersonated.status_code == 401
    stale = await post(body(allowed, node, now - 3_600))
    assert stale.status_code == 422
    assert "older than" in stale.json()["error"]["message"]
    future = await post(body(allowed, node, now + 3_600))
    assert future.status_code == 422
    too_many_answers = await post(body(allowed, node, now, attempts=1))
    assert too_many_answers.status_code == 422
    # One bad sample refuses the whole batch: nothing was stored.
    mixed = await post(body(allowed, node, now), body(stranger, node, now))
    assert mixed.status_code == 403
    async with transaction(sessions) as session:
        assert list(await session.scalars(select(ProbeSample))) == []


async def test_admins_manage_the_allow_list(
    api: httpx.AsyncClient, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    prober = Prober()
    async with transaction(sessions) as session:
        node = await add_node(session, operator=new_address())
    admin = headers(settings, Role.ADMIN)

    refused = await api.put(
        f"/v1/probers/{prober.address}", json={"name": "eu"}, headers=headers(settings)
    )
    assert refused.status_code == 403
    assert (await api.put(f"/v1/probers/{prober.address}", json={"name": "eu"})).status_code == 401

    added = await api.put(f"/v1/probers/{prober.address}", json={"name": "eu"}, headers=admin)
    assert added.status_code == 200, added.text
    assert added.json()["active"] is True
    now = int(time.time())
    ok = await api.post("/v1/probes", json={"samples": [body(prober, node, now)]})
    assert ok.status_code == 200

    listed = (await api.get("/v1/probers")).json()
    assert [(p["address"], p["name"], p["active"]) for p in listed] == [
        (prober.address, "eu", True)
    ]
    revoked = await api.delete(f"/v1/probers/{prober.address}", headers=admin)
    assert revoked.json()["active"] is False
    after = await api.post("/v1/probes", json={"samples": [body(prober, node, now + 1)]})
    assert after.status_code == 403
    missing = await api.delete(f"/v1/probers/{new_address()}", headers=admin)
    assert missing.status_code == 404
    # Re-enabled by a PUT.
    await api.put(f"/v1/probers/{prober.address}", json={"name": "eu-2"}, headers=admin)
    assert (await api.get("/v1/probers")).json()[0]["active"] is True


async def test_nodus_prober_run_measures_and_posts(
    api: httpx.AsyncClient, app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`nodus prober run`'s round against the real app: targets from the API, real health
    servers probed, signed samples posted and stored; a failed post is retried next round."""
    prober = Prober()
    settings = ProberSettings(allow_private_targets=True, timeout_seconds=1.0)
    app.dependency_overrides[get_prober_settings] = lambda: settings
    agent: LocalAccount = Account.create()
    async with health_server() as up:
        async with transaction(sessions) as session:
            await prober.allow(session)
            live = await add_node(
                session, operator=new_address(), endpoint=up.endpoint, agent=agent.address
            )
            dead_port = closed_port()
            dead = await add_node(
                session, operator=new_address(), endpoint=f"127.0.0.1:{dead_port}"
            )
        up.serve_as(live, agent)
        targets = (await api.get("/v1/probes/targets")).json()
        assert targets["chain_id"] == 31337
        assert {t["node_id"]: t["url"] for t in targets["targets"]} == {
            live: f"http://{up.endpoint}/health",
            dead: f"http://127.0.0.1:{dead_port}/health",
        }
        # Each target names the key that must sign its health answers.
        assert {t["node_id"]: t["agent"] for t in targets["targets"]}[live] == (
            agent.address.lower()
        )

        state = ProberState()
        outcome = await run_once(api, prober.account, settings, state)
        assert (outcome.probed, outcome.answered, outcome.accepted) == (2, 1, 2)

        # The control plane is unreachable for a round: the samples are kept and sent later.
        broken = httpx.AsyncClient(
            transport=httpx.MockTransport(_fail_posts(api)), base_url="http://testserver"
        )
        try:
            await run_once(broken, prober.account, settings, state, now=outcome.round - 60)
        except httpx.HTTPError:
            pass
        finally:
            await broken.aclose()
        assert len(state.pending) == 2
        third = await run_once(api, prober.account, settings, state, now=outcome.round - 120)
        assert third.accepted == 4
        assert state.pending == []

    async with transaction(sessions) as session:
        rows = list(await session.scalars(select(ProbeSample)))
    assert len(rows) == 6
    assert {r.prober for r in rows} == {prober.address}
    assert all(len(r.rtt_us) == 3 for r in rows if r.node_id == live)
    assert all(r.error == "refused" for r in rows if r.node_id == dead)


def _fail_posts(api: httpx.AsyncClient) -> Any:
    """A transport that serves GETs from the real app and fails every POST."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            raise httpx.ConnectError("control plane unreachable", request=request)
        response = await api.get(request.url.path)
        return httpx.Response(response.status_code, content=response.content)

    return handler


def test_nodus_prober_address_and_key_errors() -> None:
    prober = Prober()
    runner = CliRunner()
    key = "0x" + bytes(prober.account.key).hex()
    shown = runner.invoke(prober_cli, ["address"], env={"NODUS_PROBER_KEY": key})
    assert shown.exit_code == 0, shown.output
    assert prober.address in shown.output
    missing = runner.invoke(prober_cli, ["run", "--once"], env={"NODUS_PROBER_KEY": ""})
    assert missing.exit_code == 2
    bad = runner.invoke(prober_cli, ["address", "--key", "0x1234"])
    assert bad.exit_code == 2
    unreachable = runner.invoke(
        prober_cli,
        ["run", "--once", "--control-plane-url", f"http://127.0.0.1:{closed_port()}"],
        env={"NODUS_PROBER_KEY": key},
    )
    assert unreachable.exit_code == 1
    assert "round failed" in unreachable.output


async def test_a_full_post_of_worst_case_samples_fits_the_body_limit(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`nodus prober run` posts POST_CHUNK samples at a time: even the largest samples fit the
    control plane's default body limit."""
    prober = Prober()
    async with transaction(sessions) as session:
        await prober.allow(session)
    now = int(time.time())
    samples = []
    for i in range(POST_CHUNK):
        sample = Sample(
            prober.address, "0x" + f"{i + 1:064x}", now, 10, (MAX_RTT_US,) * 10, "x" * 32
        )
        samples.append(
            {
                "prober": sample.prober,
                "node_id": sample.node_id,
                "round": sample.round,
                "attempts": sample.attempts,
                "rtt_us": list(sample.rtt_us),
                "error": sample.error,
                "signature": sign_sample(prober.account, sample, 31337),
            }
        )
    response = await api.post("/v1/probes", json={"samples": samples})
    assert response.status_code == 200, response.text
    assert len(response.json()["unknown_nodes"]) == POST_CHUNK
