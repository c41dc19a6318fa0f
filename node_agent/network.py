"""The node's network around its VPN servers, set up by `nodus-agent run` and checked by
`status`, `/health` and `selftest`.

Without forwarding and NAT a subscriber is "connected, no internet": configs send
`AllowedIPs = 0.0.0.0/0, ::/0`, so everything the node cannot forward is lost. `setup` makes
the node forward:

- the WireGuard interface, when it is missing: `ip link add ... type wireguard` (the kernel
  module), else `wireguard-go <name>` (userspace; it stays up until the interface is deleted);
- its addresses, host 1 of the node's WireGuard pools (protocols.py), and link up;
- IPv4 and IPv6 forwarding (the previous values are restored on teardown);
- masquerading of the node's pools out of the egress interface (the default route's unless
  configured), in an nftables table the agent owns (`table inet nodus_agent`), replaced as a
  whole in one `nft -f` transaction, so a restart never doubles a rule.

OpenVPN makes and addresses its own tun from the `server` directive; the forwarding and NAT
cover its pool too. `teardown` removes what `setup` added, unless `network.keep_network`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field

from node_agent.backends.commands import CommandError, CommandRunner
from node_agent.config import AgentConfig
from node_agent.protocols import interface_address

log = logging.getLogger("nodus.agent.network")

FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
_NAME = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")


class NetworkError(RuntimeError):
    """A step of the set-up failed (the message names the step and the tool's error)."""


@dataclass
class NetworkState:
    """What `setup` found and changed (teardown undoes exactly the changes)."""

    created_interface: str | None = None  # "kernel" or "wireguard-go"
    added_addresses: list[str] = field(default_factory=list)
    changed_sysctls: dict[str, str] = field(default_factory=dict)  # name -> previous value
    nat_installed: bool = False
    egress: dict[int, str] = field(default_factory=dict)  # family -> interface
    problems: list[str] = field(default_factory=list)


class NodeNetwork:
    """Sets up, checks and tears down the node's network (commands behind the network prefix,
    so a namespace works as a host does)."""

    def __init__(self, config: AgentConfig, runner: CommandRunner | None = None) -> None:
        self.config = config
        self.options = config.network
        self.runner = runner or CommandRunner(config.network.command_prefix, timeout=30)
        self.state = NetworkState()

    @property
    def interface(self) -> str | None:
        wg = self.config.wireguard
        return wg.interface if wg.enabled else None

    # --- set-up -------------------------------------------------------------------------------

    async def setup(self) -> NetworkState:
        """Every step is tried; a failed one is logged with its cause and kept in
        `state.problems` (the agent still serves what it can)."""
        if self.interface is not None:
            await self._step("the WireGuard interface", self._ensure_interface(self.interface))
        await self._step("forwarding", self._enable_forwarding())
        if self.options.nat:
            await self._step("NAT", self._install_nat())
        else:
            log.info("NAT is off (network.nat = false): the operator routes the node's pools")
        return self.state

    async def _step(self, what: str, step: object) -> None:
        try:
            await step  # type: ignore[misc]
        except (CommandError, NetworkError) as exc:
            message = f"{what}: {exc}"
            self.state.problems.append(message)
            log.error("network set-up failed: %s", message)

    async def _ensure_interface(self, name: str) -> None:
        if not await self._exists(name):
            try:
                await self.runner.run(["ip", "link", "add", "dev", name, "type", "wireguard"])
                self.state.created_interface = "kernel"
                log.info("created WireGuard interface %s (kernel module)", name)
            except CommandError as kernel:
                log.info("no kernel WireGuard (%s); starting wireguard-go %s", kernel, name)
                await self.runner.run([self.options.wireguard_go_binary, name])
                if not await self._exists(name):
                    raise NetworkError(f"wireguard-go did not create {name}") from None
                self.state.created_interface = "wireguard-go"
                log.info("created WireGuard interface %s (wireguard-go)", name)
        current = await self._addresses(name)
        for address in self._interface_addresses():
            if address not in current:
                await self.runner.run(["ip", "addr", "add", address, "dev", name])
                self.state.added_addresses.append(address)
        await self.runner.run(["ip", "link", "set", "dev", name, "up"])
        log.info("%s is up with %s", name, ", ".join(self._interface_addresses()))

    def _interface_addresses(self) -> list[str]:
        pools = self.config.pools
        shared = self.config.openvpn is None  # no other protocol's route to keep apart
        return [
            interface_address(pool, "wireguard", whole=shared)
            for pool in (pools.ipv4, pools.ipv6)
            if pool is not None
        ]

    async def _enable_forwarding(self) -> None:
        for name in FORWARDING:
            previous = (await self.runner.run(["sysctl", "-n", name])).strip()
            if previous != "1":
                await self.runner.run(["sysctl", "-q", "-w", f"{name}=1"])
                self.state.changed_sysctls[name] = previous
        log.info("IPv4 and IPv6 forwarding on")

    async def egress_interfaces(self) -> dict[int, str]:
        """family -> the egress interface: the configured one, else each default route's."""
        if self.options.egress_interface is not None:
            return {4: self.options.egress_interface, 6: self.options.egress_interface}
        found: dict[int, str] = {}
        for family in (4, 6):
            out = await self.runner.run(["ip", "-j", f"-{family}", "route", "show", "default"])
            routes = json.loads(out or "[]")
            names = [r.get("dev") for r in routes if isinstance(r, dict)]
            name = next((n for n in names if isinstance(n, str) and _NAME.match(n)), None)
            if name is not None:
                found[family] = name
        return found

    async def _install_nat(self) -> None:
        egress = await self.egress_interfaces()
        self.state.egress = egress
        if not egress:
            raise NetworkError(
                "no default route to find the egress interface; give --egress-interface"
            )
        await self.runner.run(["nft", "-f", "-"], stdin=self.ruleset(egress).encode())
        self.state.nat_installed = True
        log.info(
            "NAT: masquerading %s out of %s (nftables table inet %s)",
            ", ".join(str(p) for p in (self.config.pools.ipv4, self.config.pools.ipv6) if p),
            ", ".join(sorted(set(egress.values()))),
            self.options.nft_table,
        )

    def ruleset(self, egress: dict[int, str]) -> str:
        """The agent's table, replaced whole (add-then-delete makes the delete always valid)."""
        table = self.options.nft_table
        rules = []
        if self.config.pools.ipv4 is not None and 4 in egress:
            rules.append(f'ip saddr {self.config.pools.ipv4} oifname "{egress[4]}" masquerade')
        if self.config.pools.ipv6 is not None and 6 in egress:
            rules.append(f'ip6 saddr {self.config.pools.ipv6} oifname "{egress[6]}" masquerade')
        body = "\n".join(f"    {rule}" for rule in rules)
        return (
            f"add table inet {table}\n"
            f"delete table inet {table}\n"
            f"table inet {table} {{\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"{body}\n"
            "  }\n"
            "  chain forward {\n"
            "    type filter hook forward priority mangle; policy accept;\n"
            "    # Tunnels carry less than 1500 bytes: clamp TCP's MSS to the route's MTU.\n"
            "    tcp flags syn tcp option maxseg size set rt mtu\n"
            "  }\n"
            "}\n"
        )

    # --- teardown -----------------------------------------------------------------------------

    async def teardown(self) -> None:
        """Removes what setup added (the interface it created, addresses, NAT, forwarding)."""
        state = self.state
        if self.options.keep_network:
            kept = []
            if state.created_interface == "wireguard-go":
                kept.append(f"wireguard-go serving {self.interface}")
            elif self.interface is not None:
                kept.append(f"the WireGuard interface {self.interface}")
            if state.nat_installed:
                kept.append(f"NAT (table inet {self.options.nft_table})")
            if state.changed_sysctls:
                kept.append("forwarding on")
            log.warning("keep_network: leaving %s running", ", ".join(kept) or "nothing")
            return
        name = self.interface
        try:
            if state.nat_installed:
                await self.runner.run(["nft", "delete", "table", "inet", self.options.nft_table])
                log.info("removed NAT (table inet %s)", self.options.nft_table)
            for sysctl, previous in state.changed_sysctls.items():
                await self.runner.run(["sysctl", "-q", "-w", f"{sysctl}={previous}"])
            if name is not None and state.created_interface is not None:
                await self.runner.run(["ip", "link", "del", "dev", name])
                log.info("removed %s (%s stops with it)", name, state.created_interface)
            elif name is not None:
                for address in state.added_addresses:
                    await self.runner.run(["ip", "addr", "del", address, "dev", name])
                log.info("left %s running: it existed before the agent started", name)
        except CommandError as exc:
            log.error("network teardown incomplete: %s", exc)
        self.state = NetworkState()

    # --- checks -------------------------------------------------------------------------------

    async def _exists(self, name: str) -> bool:
        try:
            await self.runner.run(["ip", "link", "show", "dev", name])
        except CommandError:
            return False
        return True

    async def _addresses(self, name: str) -> set[str]:
        out = await self.runner.run(["ip", "-j", "addr", "show", "dev", name])
        found: set[str] = set()
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info", []):
                found.add(f"{info.get('local')}/{info.get('prefixlen')}")
        return found

    async def interface_problem(self) -> str | None:
        """Why the WireGuard interface cannot carry traffic (None: it can, or there is none)."""
        name = self.interface
        if name is None:
            return None
        try:
            out = await self.runner.run(["ip", "-j", "link", "show", "dev", name])
        except CommandError:
            return f"{name} does not exist"
        links = json.loads(out or "[]")
        flags = links[0].get("flags", []) if links else []
        if "UP" not in flags:
            return f"{name} is down"
        if self.options.manage:
            missing = set(self._interface_addresses()) - await self._addresses(name)
            if missing:
                return f"{name} lacks its address(es) {', '.join(sorted(missing))}"
        return None

    async def forwarding_problem(self) -> str | None:
        off = []
        for name in FORWARDING:
            try:
                value = (await self.runner.run(["sysctl", "-n", name])).strip()
            except CommandError as exc:
                return f"cannot read {name}: {exc}"
            if value != "1":
                off.append(name)
        return f"{' and '.join(off)} off" if off else None

    async def nat_problem(self) -> str | None:
        """Whether the agent's table masquerades each pool (None: it does)."""
        try:
            out = await self.runner.run(["nft", "list", "table", "inet", self.options.nft_table])
        except CommandError:
            return f"no nftables table inet {self.options.nft_table}"
        egress = await self.egress_interfaces()  # a family with no way out needs no NAT
        missing = [
            str(pool)
            for pool in (self.config.pools.ipv4, self.config.pools.ipv6)
            if pool is not None and pool.version in egress and not _masquerades(out, pool)
        ]
        return f"nothing masquerades {', '.join(missing)}" if missing else None


def _masquerades(ruleset: str, pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    keyword = "ip" if pool.version == 4 else "ip6"
    return any(
        f"{keyword} saddr {pool} " in line and "masquerade" in line for line in ruleset.splitlines()
    )
