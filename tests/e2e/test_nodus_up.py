"""`nodus up` / `nodus down` as a subscriber runs them, inside a client namespace, against the
real control plane, anvil, PostgreSQL and `nodus-agent run` (tests/e2e/subscriber_lab.py):

1. WireGuard: an unpaid wallet without --subscribe exits 3 with the exact command; with
   `--subscribe 1 --kill-switch --qr-png` it pays, connects, proves itself (whoami sees the
   node), reaches the beyond host, which sees the node's address; the PNG decodes to exactly
   the config; DNS is applied without resolvconf; with the tunnel's interface down nothing
   reaches beyond and no packet leaves the underlay but to the node's endpoint; `nodus down`
   restores DNS and removes the kill switch.
2. OpenVPN with the kill switch: the same path to beyond, then `nodus down` removes both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from tests.e2e.conftest import needs_nft_and_openvpn, needs_tunnels
from tests.e2e.lab import sh
from tests.e2e.stack import until
from tests.e2e.subscriber_lab import BEYOND, NODE, SubscriberLab
from tests.support.builders import NDS, fresh_wallet, paying_subscriber
from tests.support.qr import qr_texts

pytestmark = [
    needs_tunnels,
    needs_nft_and_openvpn,
]

# Counts what leaves the client by any interface but loopback, to anything but the endpoint.
LEAK_COUNTER = """table inet leakcount {{
  chain post {{
    type filter hook postrouting priority 0; policy accept;
    oifname != "lo" ip daddr != {endpoint} counter
    oifname != "lo" meta nfproto ipv6 counter
  }}
}}
"""


def key_of(account: LocalAccount) -> str:
    return str(account.key.hex())


async def in_client(world: SubscriberLab, *command: str) -> bool:
    result = await sh("ip", "netns", "exec", world.client, *command, check=False)
    return result.ok


async def leaked_packets(world: SubscriberLab) -> int:
    listed = ["nft", "-j", "list", "table", "inet", "leakcount"]
    shown = await sh("ip", "netns", "exec", world.client, *listed)
    counters = [
        int(expression["counter"]["packets"])
        for item in json.loads(shown.stdout)["nftables"]
        for expression in item.get("rule", {}).get("expr", [])
        if "counter" in expression
    ]
    assert len(counters) == 2, shown.stdout
    return sum(counters)


async def test_wireguard_up_pays_proves_reaches_beyond_and_the_kill_switch_holds(
    subscriber_world: SubscriberLab, w3: Web3Client, deployment: Deployment, tmp_path: Path
) -> None:
    world = subscriber_world
    account = await fresh_wallet(w3, deployment, 100 * NDS)
    state = tmp_path / "state"
    png = tmp_path / "device.png"

    # Unpaid, without --subscribe: exit 3 and the exact command to run.
    unpaid_interface = world.lab.name("w")
    code, out, err = await world.nodus(
        "up", "--interface", unpaid_interface, key=key_of(account), state=state
    )
    assert code == 3, out + err
    assert f"nodus up --interface {unpaid_interface} --subscribe 1" in err, err

    # Nothing reaches beyond before the tunnel: it has no route back to the client.
    assert await world.reach_beyond() is None

    interface = world.lab.name("w")
    world.lab.interfaces.append(interface)
    code, out, err = await world.nodus(
        "up", "--subscribe", "1", "--interface", interface, "--kill-switch",
        "--qr-png", str(png), "--json", key=key_of(account), state=state,
    )  # fmt: skip
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["node"] == world.node_id
    assert summary["seen_as"] == NODE  # whoami through the tunnel: the node's address
    assert summary["seen_before"] == "198.51.100.2"

    # Beyond answers through the node and sees the node's address.
    assert await world.reach_beyond() == "hello from beyond"
    assert set(world.seen.read_text().split()) == {NODE}

    # The config: 0600, with the key filled in; the PNG decodes to exactly it.
    config = Path(summary["config"])
    assert mode_of(config) == 0o600
    text = read(config)
    assert "PrivateKey = " in text
    assert "<insert" not in text
    assert qr_texts(png) == [text]

    # `nodus status`: the subscription, this device and the live tunnel (through it).
    code, out, err = await world.nodus("status", "--json", key=key_of(account), state=state)
    assert code == 0, out + err
    shown = json.loads(out)
    assert [device["id"] for device in shown["devices"]] == [summary["config_id"]]
    tunnel = shown["tunnel"]
    assert tunnel["node_id"] == world.node_id
    assert tunnel["interface"] == interface
    assert 0 <= tunnel["latest_handshake_age_s"] < 60
    assert tunnel["rx_bytes"] > 0
    assert tunnel["tx_bytes"] > 0

    # DNS without resolvconf: the client's resolv.conf names the config's servers.
    resolv = Path("/etc/netns") / world.client / "resolv.conf"
    assert "nameserver 9.9.9.10" in read(resolv)

    # Kill switch: the tunnel's interface down; nothing beyond answers, nothing leaves.
    counter = LEAK_COUNTER.format(endpoint=NODE)
    await sh("ip", "netns", "exec", world.client, "nft", "-f", "-", stdin=counter)
    await sh("ip", "-n", world.client, "link", "set", interface, "down")
    assert await world.reach_beyond() is None
    assert not await in_client(world, "ping", "-c", "2", "-W", "1", BEYOND)
    whoami = f"import urllib.request as u; u.urlopen({world.api_url + '/v1/whoami'!r}, timeout=2)"
    assert not await in_client(world, "python3", "-c", whoami)
    # The CLI's own calls are held too, and it says at once how to get out.
    asked = time.monotonic()
    code, out, err = await world.nodus("status", key=key_of(account), state=state)
    assert code == 4, out + err
    assert "sudo nodus down" in err, err
    assert time.monotonic() - asked < 30, "the kill switch refuses at once (no timeouts)"
    assert await leaked_packets(world) == 0

    # `nodus down`: DNS restored, the kill switch and the interface gone.
    code, out, err = await world.nodus("down", key=key_of(account), state=state)
    assert code == 0, out + err
    assert read(resolv) == "nameserver 192.0.2.53\n"
    tables = await sh("ip", "netns", "exec", world.client, "nft", "list", "tables")
    assert "nodus_killswitch" not in tables.stdout
    assert not (await sh("ip", "-n", world.client, "link", "show", interface, check=False)).ok
    assert await in_client(world, "ping", "-c", "1", "-W", "2", NODE)
    # The counter does see what leaves once the kill switch is gone (it is not blind).
    await in_client(world, "ping", "-c", "1", "-W", "1", BEYOND)
    assert await leaked_packets(world) > 0


async def test_openvpn_up_reaches_beyond_through_the_node_and_down_removes_it(
    subscriber_world: SubscriberLab, w3: Web3Client, deployment: Deployment, tmp_path: Path
) -> None:
    world = subscriber_world
    account = await paying_subscriber(w3, deployment)
    state = tmp_path / "state"
    interface = world.lab.name("o")
    code, out, err = await world.nodus(
        "up", "--protocol", "openvpn", "--interface", interface, "--no-dns", "--kill-switch",
        "--json", key=key_of(account), state=state,
    )  # fmt: skip
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["seen_as"] == NODE
    assert await world.reach_beyond() == "hello from beyond"
    assert set(world.seen.read_text().split()) == {NODE}
    tables = await sh("ip", "netns", "exec", world.client, "nft", "list", "tables")
    assert "nodus_killswitch" in tables.stdout
    code, out, err = await world.nodus("down", key=key_of(account), state=state)
    assert code == 0, out + err
    await until(lambda: _gone(world.client, interface), 10, "the OpenVPN interface to go")
    tables = await sh("ip", "netns", "exec", world.client, "nft", "list", "tables")
    assert "nodus_killswitch" not in tables.stdout
    assert await in_client(world, "ping", "-c", "1", "-W", "2", NODE)  # the underlay is back
    assert await world.reach_beyond() is None


async def _gone(namespace: str, interface: str) -> bool:
    return not (await sh("ip", "-n", namespace, "link", "show", interface, check=False)).ok


def read(path: Path) -> str:
    return path.read_text()


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777
