"""Benchmark, not a test (its name keeps it out of `scripts/test`; `scripts/bench-connect` runs
it): in the subscriber lab (tests/e2e/subscriber_lab.py), for each of NODUS_BENCH_RUNS paying
wallets, the time from starting `nodus up` to the first ping the beyond host answers (a
`ping -D` every 50 ms runs in the client from the start; before the tunnel nothing answers),
and the time `nodus up` itself reports; then `nodus down`. Prints medians, min and max."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
from pathlib import Path

from control_plane.chain.contracts import Deployment, Web3Client
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import stop_process
from tests.e2e.subscriber_lab import BEYOND, SubscriberLab
from tests.support.builders import paying_subscriber

pytestmark = needs_tunnels
_STAMP = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from", re.MULTILINE)


async def _first_answer(world: SubscriberLab, log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", world.client,
            "ping", "-D", "-n", "-i", "0.05", "-W", "1", BEYOND,
            stdout=out, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip


async def test_bench_nodus_up_to_first_packet_beyond(
    subscriber_world: SubscriberLab, w3: Web3Client, deployment: Deployment, tmp_path: Path
) -> None:
    world = subscriber_world
    runs = int(os.environ.get("NODUS_BENCH_RUNS", "5"))
    to_packet: list[float] = []
    reported: list[float] = []
    for run in range(runs):
        account = await paying_subscriber(w3, deployment)
        state = tmp_path / f"state-{run}"
        interface = world.lab.name("w")
        world.lab.interfaces.append(interface)
        log = tmp_path / f"ping-{run}.log"
        pinger = await _first_answer(world, log)
        started = time.time()
        code, out, err = await world.nodus(
            "up", "--interface", interface, "--no-dns", "--json",
            key=str(account.key.hex()), state=state,
        )  # fmt: skip
        assert code == 0, out + err
        for _ in range(40):  # the ping after the proof, at most 2 s later
            if _STAMP.search(log.read_text()):
                break
            await asyncio.sleep(0.05)
        await stop_process(pinger)
        first = _STAMP.search(log.read_text())
        assert first is not None, log.read_text()
        to_packet.append(float(first.group(1)) - started)
        reported.append(float(json.loads(out)["seconds"]))
        code, out, err = await world.nodus("down", key=str(account.key.hex()), state=state)
        assert code == 0, out + err
    print(f"\nnodus up -> first packet answered by beyond ({runs} runs, WireGuard, lab)")
    for name, values in (("to first answer", to_packet), ("nodus up reports", reported)):
        print(
            f"  {name:18} median {statistics.median(values):.2f} s  "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
