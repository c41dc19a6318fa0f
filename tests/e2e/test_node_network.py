"""The agent's network set-up (node_agent/network.py) on a real namespace: the WireGuard
interface made when missing (wireguard-go where the kernel has no module), its addresses,
forwarding and NAT in the agent's nftables table, found and checked again by the same probes
`status` and `selftest` use, and everything removed on teardown unless kept."""

from __future__ import annotations

import shutil

import pytest

from node_agent.config import AgentConfig, load_config
from node_agent.network import NodeNetwork
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import Lab, sh

pytestmark = [
    needs_tunnels,
    pytest.mark.skipif(not shutil.which("nft"), reason="requires nft (apt-get install nftables)"),
]

POOL_V4, POOL_V6 = "10.77.0.0/16", "fd77:77:77::/112"


async def node_with_uplink(lab: Lab) -> str:
    """A node namespace whose default route leaves by a veth to an "upstream" namespace."""
    node = await lab.namespace("node")
    upstream = await lab.namespace("up")
    await lab.veth(node, "203.0.113.1/24", upstream, "203.0.113.2/24")
    await sh("ip", "-n", node, "route", "add", "default", "via", "203.0.113.2")
    uplink = (await sh("ip", "-n", node, "-o", "link", "show", "type", "veth")).stdout
    name = uplink.split(":")[1].strip().split("@")[0]
    await sh("ip", "-n", node, "-6", "addr", "add", "2001:db8::1/64", "dev", name, "nodad")
    await sh("ip", "-n", node, "-6", "route", "add", "default", "via", "2001:db8::2")
    return node


def config_for(lab: Lab, namespace: str, **extra: str) -> AgentConfig:
    environ = {
        "NODUS_AGENT_NODE_ID": "0x" + "ab" * 32,
        "NODUS_AGENT_CONTROL_PLANE_URL": "http://127.0.0.1:9",
        "NODUS_AGENT_POOLS_IPV4": POOL_V4,
        "NODUS_AGENT_POOLS_IPV6": POOL_V6,
        "NODUS_AGENT_WIREGUARD_INTERFACE": lab.name("w"),
        "NODUS_AGENT_WIREGUARD_COMMAND_PREFIX": f"ip netns exec {namespace}",
        **extra,
    }
    return load_config(None, environ)


async def in_ns(namespace: str, *args: str) -> str:
    return (await sh("ip", "netns", "exec", namespace, *args)).stdout


async def test_setup_makes_the_node_forward_and_teardown_removes_it(lab: Lab) -> None:
    namespace = await node_with_uplink(lab)
    config = config_for(lab, namespace)
    interface = config.wireguard.interface
    lab.interfaces.append(interface)
    network = NodeNetwork(config)
    assert await network.interface_problem() == f"{interface} does not exist"
    assert await network.nat_problem() == "no nftables table inet nodus_agent"

    state = await network.setup()

    assert state.problems == []
    assert state.created_interface in ("kernel", "wireguard-go")
    assert set(state.egress) == {4, 6}
    shown = await in_ns(namespace, "ip", "addr", "show", "dev", interface)
    assert "inet 10.77.0.1/16" in shown  # no OpenVPN here: WireGuard keeps the whole pool
    assert "inet6 fd77:77:77::1/112" in shown
    assert (await in_ns(namespace, "sysctl", "-n", "net.ipv4.ip_forward")).strip() == "1"
    ruleset = await in_ns(namespace, "nft", "list", "table", "inet", "nodus_agent")
    assert f'ip saddr {POOL_V4} oifname "{state.egress[4]}" masquerade' in ruleset
    assert f'ip6 saddr {POOL_V6} oifname "{state.egress[6]}" masquerade' in ruleset
    assert await network.interface_problem() is None
    assert await network.forwarding_problem() is None
    assert await network.nat_problem() is None

    await network.setup()  # a restart replaces the table whole: no rule twice
    ruleset = await in_ns(namespace, "nft", "list", "table", "inet", "nodus_agent")
    assert ruleset.count("masquerade") == 2

    await network.teardown()

    assert not (await sh("ip", "-n", namespace, "link", "show", interface, check=False)).ok
    assert (await in_ns(namespace, "sysctl", "-n", "net.ipv4.ip_forward")).strip() == "0"
    assert (await in_ns(namespace, "nft", "list", "tables")).strip() == ""


async def test_keep_network_leaves_it_and_no_nat_installs_none(lab: Lab) -> None:
    namespace = await node_with_uplink(lab)
    config = config_for(
        lab, namespace, NODUS_AGENT_NETWORK_KEEP_NETWORK="true", NODUS_AGENT_NETWORK_NAT="false"
    )
    lab.interfaces.append(config.wireguard.interface)
    network = NodeNetwork(config)

    await network.setup()
    await network.teardown()

    assert await network.interface_problem() is None  # kept, still up and addressed
    assert await network.forwarding_problem() is None
    assert await network.nat_problem() == "no nftables table inet nodus_agent"


async def test_an_egress_that_cannot_be_found_is_a_logged_problem(lab: Lab) -> None:
    namespace = await lab.namespace("node")  # no default route
    config = config_for(lab, namespace)
    lab.interfaces.append(config.wireguard.interface)
    network = NodeNetwork(config)

    state = await network.setup()

    assert state.problems == [
        "NAT: no default route to find the egress interface; give --egress-interface"
    ]
    assert await network.interface_problem() is None  # the rest was still done
    await network.teardown()
