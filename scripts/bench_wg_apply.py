"""How long applying a WireGuard peer set takes, through nodus-agent's backend and the two usual
alternatives, on a wireguard-go interface in a throwaway network namespace (root needed).

Cases (each on the same machine, same interface):
  ours       WireGuardBackend.apply: `wg show dump`, diff, `wg set` batches of <= 1,000 peers
  syncconf   `wg syncconf <if> <file>` with the whole desired set
  per-peer   one `wg set <if> peer ...` process per peer (what not to do)
for: N peers onto an empty interface (N = 1,000 and 5,000 by default), and a one-peer change
on a 5,000-peer interface. Prints medians (and min/max) over --rounds; not a test.

    scripts/bench-wg-apply [--rounds 3] [--sizes 1000,5000] [--per-peer-rounds 1]
                           [--change-at 5000] [--per-peer-max 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node_agent.backends.commands import CommandRunner
from node_agent.backends.wireguard import WireGuardBackend
from node_agent.peers import WireGuardPeer

LATER = datetime.now(UTC) + timedelta(days=30)
ANCHORS = {  # ../shared/ANCHORS.md, measured with wireguard-go on 2 cores
    ("syncconf", "empty", 1000): 0.21,
    ("syncconf", "empty", 5000): 0.65,
    ("syncconf", "change", 5000): 0.07,
    ("per-peer", "empty", 1000): 1.8,
    ("per-peer", "empty", 5000): 8.7,
}


def make_peers(count: int, offset: int = 0) -> list[WireGuardPeer]:
    def host(i: int) -> str:
        i += 2 + offset
        return f"10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256}/32"

    def ipv6(i: int) -> str:
        return f"fd00:b::{i + 2 + offset:x}/128"

    return [
        WireGuardPeer(base64.b64encode(secrets.token_bytes(32)).decode(), (host(i), ipv6(i)), LATER)
        for i in range(count)
    ]


def conf_text(peers: list[WireGuardPeer]) -> str:
    blocks = [
        f"[Peer]\nPublicKey = {p.public_key}\nAllowedIPs = {', '.join(p.allowed_ips)}\n"
        for p in peers
    ]
    return "[Interface]\n" + "\n".join(blocks)


class Bench:
    def __init__(self, namespace: str, interface: str, workdir: Path) -> None:
        self.prefix = ("ip", "netns", "exec", namespace)
        self.interface = interface
        self.workdir = workdir
        self.runner = CommandRunner(self.prefix)
        self.backend = WireGuardBackend(interface, runner=self.runner)
        self.results: dict[tuple[str, str, int], list[float]] = {}
        self.processes: dict[tuple[str, str, int], int] = {}

    async def wg(self, *args: str) -> None:
        await self.runner.run(["wg", *args])

    async def reset(self, peers: list[WireGuardPeer]) -> None:
        """The interface holds exactly `peers` (set up untimed, through syncconf)."""
        await self.syncconf(peers)

    async def ours(self, peers: list[WireGuardPeer]) -> None:
        await self.backend.apply(tuple(peers))

    async def syncconf(self, peers: list[WireGuardPeer]) -> None:
        path = self.workdir / "bench.conf"
        path.write_text(conf_text(peers))
        await self.wg("syncconf", self.interface, str(path))

    async def per_peer(self, peers: list[WireGuardPeer]) -> None:
        for peer in peers:
            await self.wg("set", self.interface, "peer", peer.public_key,
                          "allowed-ips", ",".join(peer.allowed_ips))  # fmt: skip

    async def measure(
        self,
        case: tuple[str, str, int],
        start: list[WireGuardPeer],
        target: list[WireGuardPeer],
        method: Callable[[list[WireGuardPeer]], Awaitable[None]],
    ) -> None:
        await self.reset(start)
        before = self.runner.processes
        started = time.perf_counter()
        await method(target)
        elapsed = time.perf_counter() - started
        self.results.setdefault(case, []).append(elapsed)
        self.processes[case] = self.runner.processes - before
        live = await self.backend.dump()
        assert set(live.peers) == {p.public_key for p in target}, f"{case}: wrong result"


async def run(args: argparse.Namespace) -> None:
    tag = secrets.token_hex(3)
    namespace, interface = f"nodus-bench-{tag}", f"ndbench{tag}"
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        await CommandRunner().run(["ip", "netns", "add", namespace])
        stack.push_async_callback(CommandRunner().run, ["ip", "netns", "del", namespace])
        log = (workdir / "wireguard-go.log").open("wb")
        daemon = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", namespace, "wireguard-go", "-f", interface,
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

        async def stop_daemon() -> None:
            if daemon.returncode is None:
                daemon.terminate()
                await daemon.wait()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/var/run/wireguard/{interface}.sock")

        stack.push_async_callback(stop_daemon)
        for _ in range(100):
            with contextlib.suppress(Exception):
                await CommandRunner().run(["ip", "-n", namespace, "link", "show", interface])
                break
            await asyncio.sleep(0.05)
        bench = Bench(namespace, interface, workdir)
        methods = {"ours": bench.ours, "syncconf": bench.syncconf, "per-peer": bench.per_peer}

        for size in args.sizes:
            target = make_peers(size)
            for _ in range(args.rounds):
                for name in ("ours", "syncconf"):
                    await bench.measure((name, "empty", size), [], target, methods[name])
            for _ in range(args.per_peer_rounds if size <= args.per_peer_max else 0):
                await bench.measure(("per-peer", "empty", size), [], target, bench.per_peer)
            print(f"  measured {size} peers onto an empty interface", file=sys.stderr)

        base = make_peers(args.change_at)
        for _ in range(args.rounds):
            for name in ("ours", "syncconf"):
                changed = [*base[:-1], *make_peers(1, offset=args.change_at)]
                await bench.measure((name, "change", args.change_at), base, changed, methods[name])
        print(f"  measured a one-peer change at {args.change_at}", file=sys.stderr)
        report(bench)


def report(bench: Bench) -> None:
    print()
    print("| case | method | median | min | max | processes | anchor (ANCHORS.md) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    order = {"ours": 0, "syncconf": 1, "per-peer": 2}
    for case in sorted(bench.results, key=lambda c: (c[1], c[2], order[c[0]])):
        name, kind, size = case
        times = bench.results[case]
        label = f"{size:,} peers -> empty" if kind == "empty" else f"1 change at {size:,}"
        anchor = ANCHORS.get(case)
        print(
            f"| {label} | {name} | {statistics.median(times):.3f} s | {min(times):.3f} s "
            f"| {max(times):.3f} s | {bench.processes[case]:,} "
            f"| {'' if anchor is None else f'{anchor} s'} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-peer-rounds", type=int, default=1)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 5000]
    )
    parser.add_argument("--change-at", type=int, default=5000)
    parser.add_argument(
        "--per-peer-max", type=int, default=5000, help="skip per-peer above this size (slow)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0 or not Path("/dev/net/tun").exists():
        sys.exit("bench_wg_apply: requires root and /dev/net/tun")
    for tool in ("ip", "wg", "wireguard-go"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_wg_apply: {tool} is missing (apt-get install wireguard-tools "
                     "wireguard-go iproute2)")  # fmt: skip
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
