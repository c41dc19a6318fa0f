"""selftest's checks that need no namespace: the signed health answer verified against a real
health server, the control plane's probe answers mapped to reason codes, the score bound and
what to fix first."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from node_agent.config import load_config
from node_agent.health import HealthProver, start_health_server
from node_agent.selftest import Check, fix_first, probe_check, score, signed_health
from tests.node_agent.fake_control_plane import free_port

NODE = "0x" + "ab" * 32


def snapshot() -> tuple[int, dict[str, Any]]:
    return 200, {"status": "ok", "revision": 1, "peers": 0, "reason": "no_peers"}


async def test_the_signed_health_answer_is_verified_against_the_agent_key() -> None:
    agent: LocalAccount = Account.create()
    other: LocalAccount = Account.create()
    port = free_port()
    server = await start_health_server("127.0.0.1", port, snapshot, HealthProver(NODE, agent))
    url = f"http://127.0.0.1:{port}/health"
    try:
        good = await signed_health(url, NODE, agent.address)
        assert (good.level, good.reason) == ("ok", "ok")
        forged = await signed_health(url, NODE, other.address)
        assert (forged.level, forged.reason) == ("fail", "bad_signature")
        elsewhere = await signed_health(url, "0x" + "cd" * 32, agent.address)
        assert elsewhere.reason == "wrong_node"
    finally:
        server.close()
        await server.wait_closed()
    gone = await signed_health(url, NODE, agent.address)
    assert (gone.level, gone.reason) == ("fail", "health_unreachable")
    assert "start the agent" in gone.fix


def test_probe_answers_become_reason_codes() -> None:
    too_old = probe_check(404, {"detail": "Not Found"}, None)
    assert (too_old.level, too_old.reason) == ("warn", "control_plane_too_old")
    # The control plane's error shape for a route it does not have.
    routeless = probe_check(404, {"error": {"code": "not_found", "message": "Not Found"}}, None)
    assert routeless.reason == "control_plane_too_old"
    unknown_node = probe_check(
        404, {"error": {"code": "not_found", "message": "no such node"}}, None
    )
    assert (unknown_node.level, unknown_node.reason) == ("fail", "probe_refused")
    limited = probe_check(429, {}, 42.0)
    assert (limited.level, limited.reason, limited.detail) == (
        "warn",
        "probe_rate_limited",
        "retry after 42s",
    )
    up = probe_check(200, {"verdict": "up", "reason": "ok", "latency_ms": 12.5}, None)
    assert (up.level, up.detail) == ("ok", "up, 12.5 ms")
    down = probe_check(
        200, {"verdict": "down", "reason": "connect_timeout", "fix": "open TCP 51820"}, None
    )
    assert (down.level, down.reason, down.fix) == ("fail", "connect_timeout", "open TCP 51820")


def test_the_score_bound_and_what_to_fix_first() -> None:
    def check(name: str, level: str, components: tuple[str, ...]) -> Check:
        return Check(name, level, "x" if level == "fail" else "ok", "", "", components)

    checks = [
        check("nat", "fail", ("traffic",)),
        check("health", "fail", ("uptime", "latency")),
        check("interface", "ok", ("handshake", "traffic")),
    ]
    assert score(checks) == (15, {"uptime": 0, "latency": 0, "handshake": 15, "traffic": 0})
    first = fix_first(checks)
    assert first is not None
    assert first.name == "health"
    assert fix_first([check("nat", "ok", ("traffic",))]) is None


async def test_the_endpoint_default_answers_on_ipv4_and_ipv6() -> None:
    """health.listen = "endpoint" binds every address of both families (a "::" socket from
    asyncio is IPv6-only, which IPv4 probers would never reach)."""
    agent: LocalAccount = Account.create()
    port = free_port()
    config = load_config(
        None,
        {
            "NODUS_AGENT_NODE_ID": NODE,
            "NODUS_AGENT_CONTROL_PLANE_URL": "http://127.0.0.1:9",
            "NODUS_AGENT_ENDPOINT": f"vpn.example.net:{port}",
        },
    )
    assert config.health_listen is not None
    host, listen_port = config.health_listen
    server = await start_health_server(host, listen_port, snapshot, HealthProver(NODE, agent))
    try:
        for address in ("127.0.0.1", "[::1]"):
            check = await signed_health(f"http://{address}:{port}/health", NODE, agent.address)
            assert check.reason == "ok", (address, check.detail)
    finally:
        server.close()
        await server.wait_closed()
