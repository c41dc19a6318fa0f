"""WireGuard through `wg` (kernel WireGuard or wireguard-go alike).

`apply` reads the live peers (`wg show <if> dump`), compares them with the desired set and sends
only the difference, in one batch: `wg set <if> peer A remove peer B allowed-ips ... ...`, split
into processes of at most `max_peers_per_command` peers (removals first, so an address moving
from a removed peer to a new one never lands on the old peer). Peers whose allowed IPs did not
change are not touched, so live sessions keep their handshakes and counters; nothing is ever
replaced wholesale. Measured against `wg syncconf` in scripts/bench_wg_apply.py.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from node_agent.backends import PeerStats
from node_agent.backends.commands import CommandError, CommandRunner
from node_agent.keys import read_wireguard_private_key, wireguard_public_key
from node_agent.peers import Peer, WireGuardPeer

# One process's argument list stays far below ARG_MAX (2 MiB with the environment on Linux).
MAX_ARGUMENT_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class LivePeer:
    public_key: str
    allowed_ips: frozenset[str]
    last_handshake_at: float | None
    rx_bytes: int
    tx_bytes: int


class InterfaceDump:
    """`wg show <if> dump`, read lazily: the allowed IPs per peer (what `apply` diffs) are
    split out at once; handshakes and counters (what `stats` needs) only when asked for."""

    def __init__(self, public_key: str | None, listen_port: int, rows: list[list[str]]) -> None:
        self.public_key = public_key
        self.listen_port = listen_port
        self._rows = rows
        self.allowed_ips: dict[str, frozenset[str]] = {
            row[0]: frozenset() if row[3] == "(none)" else frozenset(row[3].split(","))
            for row in rows
        }

    @functools.cached_property
    def peers(self) -> dict[str, LivePeer]:
        return {
            row[0]: LivePeer(
                public_key=row[0],
                allowed_ips=self.allowed_ips[row[0]],
                last_handshake_at=float(row[4]) if row[4] != "0" else None,
                rx_bytes=int(row[5]),
                tx_bytes=int(row[6]),
            )
            for row in self._rows
        }


@dataclass(frozen=True, slots=True)
class PeerChange:
    remove: tuple[str, ...]
    upsert: tuple[tuple[str, tuple[str, ...]], ...]  # (public key, allowed IPs)

    @property
    def empty(self) -> bool:
        return not self.remove and not self.upsert


@dataclass(frozen=True, slots=True)
class ApplyResult:
    added: int
    updated: int
    removed: int
    processes: int  # `wg` processes started, the dump included
    seconds: float


def normalize_ips(ips: Iterable[str]) -> frozenset[str]:
    """Canonical text of each network, so `wg`'s spelling and ours compare equal."""
    return frozenset(str(ipaddress.ip_network(ip.strip(), strict=False)) for ip in ips)


def parse_dump(text: str) -> InterfaceDump:
    """`wg show <if> dump`: the interface line (private key, public key, listen port, fwmark),
    then one line per peer (public key, preshared key, endpoint, allowed IPs, latest handshake,
    rx bytes, tx bytes, persistent keepalive), tab-separated."""
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise CommandError("wg show dump: empty output")
    head = lines[0].split("\t")
    if len(head) != 4:
        raise CommandError("wg show dump: unexpected interface line")
    rows = [line.split("\t") for line in lines[1:] if line]
    if any(len(row) != 8 for row in rows):
        raise CommandError("wg show dump: unexpected peer line")
    try:
        return InterfaceDump(
            public_key=None if head[1] == "(none)" else head[1],
            listen_port=int(head[2]),
            rows=rows,
        )
    except ValueError as exc:
        raise CommandError(f"wg show dump: {exc}") from exc


def diff_peers(
    desired: Mapping[str, frozenset[str]], live: Mapping[str, frozenset[str]]
) -> PeerChange:
    """What turns `live` into `desired`: peers to remove, and peers to add or whose allowed IPs
    changed. Unchanged peers appear in neither.

    Addresses are compared as text first (`wg` prints them canonically, as validate.py stores
    them; parsing 10,000 addresses on every apply would cost more than the apply), and parsed
    only when the text differs, so another spelling of the same network is no change."""
    remove = tuple(sorted(key for key in live if key not in desired))
    upsert = tuple(
        (key, tuple(sorted(ips)))
        for key, ips in desired.items()
        if (current := live.get(key)) != ips
        and (current is None or normalize_ips(current) != normalize_ips(ips))
    )
    return PeerChange(remove, upsert)


def set_commands(
    wg: str,
    interface: str,
    change: PeerChange,
    *,
    interface_args: Sequence[str] = (),
    max_peers: int = 1000,
    max_bytes: int = MAX_ARGUMENT_BYTES,
) -> list[list[str]]:
    """`wg set` argument lists for `change`: removals first, at most `max_peers` peers and
    about `max_bytes` of arguments per process. `interface_args` (private key, listen port) go
    in the first one; an empty change with no interface args needs no process at all."""
    groups: list[list[str]] = [["peer", key, "remove"] for key in change.remove]
    groups += [["peer", key, "allowed-ips", ",".join(ips)] for key, ips in change.upsert]
    base = [wg, "set", interface]
    commands: list[list[str]] = []
    current: list[str] = [*base, *interface_args]
    peers = 0
    size = sum(len(arg) + 1 for arg in current)
    for group in groups:
        group_size = sum(len(arg) + 1 for arg in group)
        if peers and (peers >= max_peers or size + group_size > max_bytes):
            commands.append(current)
            current, peers, size = list(base), 0, sum(len(arg) + 1 for arg in base)
        current += group
        peers += 1
        size += group_size
    if peers or interface_args:
        commands.append(current)
    return commands


class WireGuardBackend:
    """A `VpnBackend` for one WireGuard interface."""

    protocol = "wireguard"

    def __init__(
        self,
        interface: str,
        *,
        runner: CommandRunner | None = None,
        wg: str = "wg",
        private_key_file: Path | None = None,
        listen_port: int | None = None,
        max_peers_per_command: int = 1000,
    ) -> None:
        self.interface = interface
        self.runner = runner or CommandRunner()
        self.wg = wg
        self.private_key_file = private_key_file
        self.listen_port = listen_port
        self.max_peers_per_command = max_peers_per_command
        self.public_key = (
            wireguard_public_key(read_wireguard_private_key(private_key_file))
            if private_key_file is not None
            else None
        )
        self.last_apply: ApplyResult | None = None

    async def dump(self) -> InterfaceDump:
        return parse_dump(await self.runner.run([self.wg, "show", self.interface, "dump"]))

    async def apply(self, peers: tuple[Peer, ...]) -> None:
        started = time.perf_counter()
        processes = self.runner.processes
        desired = {
            peer.public_key: frozenset(peer.allowed_ips)
            for peer in peers
            if isinstance(peer, WireGuardPeer)
        }
        dump = await self.dump()
        live = dump.allowed_ips
        change = diff_peers(desired, live)
        commands = set_commands(
            self.wg,
            self.interface,
            change,
            interface_args=self._interface_args(dump),
            max_peers=self.max_peers_per_command,
        )
        for command in commands:
            await self.runner.run(command)
        added = sum(1 for key, _ in change.upsert if key not in live)
        self.last_apply = ApplyResult(
            added=added,
            updated=len(change.upsert) - added,
            removed=len(change.remove),
            processes=self.runner.processes - processes,
            seconds=time.perf_counter() - started,
        )

    async def stats(self) -> list[PeerStats]:
        dump = await self.dump()
        return [
            PeerStats(
                key=peer.public_key,
                last_handshake_at=peer.last_handshake_at,
                rx_bytes=peer.rx_bytes,
                tx_bytes=peer.tx_bytes,
            )
            for peer in dump.peers.values()
        ]

    def _interface_args(self, dump: InterfaceDump) -> list[str]:
        """Sets the private key and listen port when they differ from ours (a restarted
        wireguard-go comes back without them)."""
        args: list[str] = []
        if self.private_key_file is not None and dump.public_key != self.public_key:
            args += ["private-key", str(self.private_key_file)]
        if self.listen_port is not None and dump.listen_port != self.listen_port:
            args += ["listen-port", str(self.listen_port)]
        return args
