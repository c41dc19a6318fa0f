"""The WireGuard backend on a real wireguard-go interface: a large set lands in a few `wg set`
processes, a change touches only what changed, and a live peer keeps its session (handshake and
counters) through any apply: nothing is ever replaced wholesale."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

from node_agent.backends.commands import CommandRunner
from node_agent.backends.wireguard import WireGuardBackend
from node_agent.keys import generate_wireguard_private_key, wireguard_public_key
from node_agent.peers import WireGuardPeer
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import Lab, ping, sh

pytestmark = needs_tunnels

LATER = datetime.now(UTC) + timedelta(days=30)


def peers(count: int, first_host: int = 10) -> list[WireGuardPeer]:
    return [
        WireGuardPeer(
            base64.b64encode(secrets.token_bytes(32)).decode(),
            (f"10.77.{(first_host + i) // 256}.{(first_host + i) % 256}/32",),
            LATER,
        )
        for i in range(count)
    ]


async def test_a_large_set_is_applied_in_batches_and_a_change_touches_only_itself(
    lab: Lab,
) -> None:
    namespace = await lab.namespace("node")
    interface = await lab.wireguard_go(namespace, "n")
    key_file = lab.directory / "wg.key"
    key_file.write_text(generate_wireguard_private_key())
    runner = CommandRunner(("ip", "netns", "exec", namespace))
    backend = WireGuardBackend(
        interface, runner=runner, private_key_file=key_file, listen_port=51820
    )
    desired = peers(2500)

    await backend.apply(tuple(desired))

    assert backend.last_apply is not None
    assert backend.last_apply.added == 2500
    assert backend.last_apply.processes == 1 + 3  # the dump, then 1,000 + 1,000 + 500 peers
    dump = await backend.dump()
    assert dump.public_key == backend.public_key
    assert dump.listen_port == 51820
    assert {k: set(p.allowed_ips) for k, p in dump.peers.items()} == {
        p.public_key: set(p.allowed_ips) for p in desired
    }

    changed = [*desired[1:], *peers(1, first_host=5000)]
    changed[0] = WireGuardPeer(changed[0].public_key, ("10.77.200.1/32",), LATER)
    await backend.apply(tuple(changed))

    assert backend.last_apply.processes == 2  # the dump and one `wg set`
    assert (backend.last_apply.added, backend.last_apply.updated) == (1, 1)
    assert backend.last_apply.removed == 1
    after = await backend.dump()
    assert set(after.peers) == {p.public_key for p in changed}
    assert after.peers[changed[0].public_key].allowed_ips == {"10.77.200.1/32"}

    await backend.apply(tuple(changed))  # already there: only the dump runs
    assert backend.last_apply.processes == 1


async def test_a_live_peer_keeps_its_session_through_applies(lab: Lab) -> None:
    node_ns, client_ns = await lab.namespace("node"), await lab.namespace("cl")
    await lab.veth(node_ns, "198.18.1.1/24", client_ns, "198.18.1.2/24")
    node_if = await lab.wireguard_go(node_ns, "n")
    client_if = await lab.wireguard_go(client_ns, "c")
    node_key, client_key = lab.directory / "node.key", lab.directory / "client.key"
    node_key.write_text(generate_wireguard_private_key())
    client_key.write_text(generate_wireguard_private_key())
    backend = WireGuardBackend(
        node_if,
        runner=CommandRunner(("ip", "netns", "exec", node_ns)),
        private_key_file=node_key,
        listen_port=51820,
    )
    client = WireGuardPeer(wireguard_public_key(client_key.read_text()), ("10.77.0.2/32",), LATER)
    await backend.apply((client,))
    await sh("ip", "-n", node_ns, "addr", "add", "10.77.0.1/16", "dev", node_if)
    await sh("ip", "-n", node_ns, "link", "set", node_if, "up")
    await sh(
        "ip", "netns", "exec", client_ns, "wg", "set", client_if, "private-key", str(client_key),
        "peer", backend.public_key or "", "endpoint", "198.18.1.1:51820",
        "allowed-ips", "10.77.0.1/32",
    )  # fmt: skip
    await sh("ip", "-n", client_ns, "addr", "add", "10.77.0.2/32", "dev", client_if)
    await sh("ip", "-n", client_ns, "link", "set", client_if, "up")
    await sh("ip", "-n", client_ns, "route", "add", "10.77.0.1/32", "dev", client_if)
    assert await ping(client_ns, "10.77.0.1", count=3, wait=2)
    before = (await backend.dump()).peers[client.public_key]
    assert before.last_handshake_at is not None
    assert before.rx_bytes > 0

    others = peers(1500, first_host=100)
    await backend.apply((client, *others))  # 1,500 peers join
    await backend.apply((client, *others[750:]))  # 750 leave

    during = (await backend.dump()).peers[client.public_key]
    assert during.last_handshake_at == before.last_handshake_at  # no new handshake needed
    assert during.rx_bytes >= before.rx_bytes  # counters were not reset
    assert await ping(client_ns, "10.77.0.1", count=1, wait=1)
    after = (await backend.dump()).peers[client.public_key]
    assert after.last_handshake_at == before.last_handshake_at
    assert after.rx_bytes > before.rx_bytes

    await backend.apply(tuple(others[750:]))  # and when it leaves, it is cut
    assert not await ping(client_ns, "10.77.0.1", count=2, wait=1)
