"""Benchmark, not a test (its name keeps it out of `scripts/test`; `scripts/bench-connect` runs
it): in the subscriber lab (tests/e2e/subscriber_lab.py), for each of NODUS_BENCH_RUNS paying
wallets, the time from starting `nodus up` to the first ping the beyond host answers (a
`ping -D` every 50 ms runs in the client from the start; before the tunnel nothing answers),
and the time `nodus up` itself reports; then `nodus down`. Then, for wallets that ask for a config
before paying (402), the time from the subscribe receipt to POST /v1/configs answering 201 (asked
again every 50 ms) and from the receipt to the first packet beyond answers (`nodus up` started at
the receipt). Prints medians, min and max."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
from functools import partial
from pathlib import Path

import httpx

from control_plane.chain.contracts import Deployment, Web3Client
from tests.e2e.conftest import needs_tunnels
from tests.e2e.lab import stop_process
from tests.e2e.stack import until
from tests.e2e.subscriber_lab import BEYOND, SubscriberLab
from tests.e2e.test_openvpn_tunnel import bearer
from tests.support.builders import NDS, fresh_wallet, paying_subscriber, subscribe, wg_keys

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
        to_packet.append(await _first_stamp(pinger, log) - started)
        reported.append(float(json.loads(out)["seconds"]))
        code, out, err = await world.nodus("down", key=str(account.key.hex()), state=state)
        assert code == 0, out + err
    print(f"\nnodus up -> first packet answered by beyond ({runs} runs, WireGuard, lab)")
    _print(("to first answer", to_packet), ("nodus up reports", reported))


async def test_bench_subscribe_receipt_to_config_and_first_packet(
    subscriber_world: SubscriberLab, w3: Web3Client, deployment: Deployment, tmp_path: Path
) -> None:
    world = subscriber_world
    runs = int(os.environ.get("NODUS_BENCH_RUNS", "5"))
    to_config: list[float] = []
    to_packet: list[float] = []
    for run in range(runs):
        account = await fresh_wallet(w3, deployment, 100 * NDS)
        body = {"node_id": world.node_id, "protocol": "wireguard", "public_key": wg_keys().public}
        async with httpx.AsyncClient(base_url=world.host_api_url) as http:
            headers = await bearer(http, account)
            unpaid = await http.post("/v1/configs", json=body, headers=headers)
            assert unpaid.status_code == 402, unpaid.text  # asked before paying
            await subscribe(w3, deployment, account)  # returns once the receipt is in
            receipt = time.time()
            issued = partial(_issued, http, body, headers)
            await until(issued, 60, "POST /v1/configs to answer 201", step=0.05)
            to_config.append(time.time() - receipt)

        # A second paying wallet, `nodus up` started at its receipt.
        account = await fresh_wallet(w3, deployment, 100 * NDS)
        state = tmp_path / f"receipt-{run}"
        interface = world.lab.name("w")
        world.lab.interfaces.append(interface)
        log = tmp_path / f"receipt-ping-{run}.log"
        pinger = await _first_answer(world, log)
        await subscribe(w3, deployment, account)
        receipt = time.time()
        code, out, err = await world.nodus(
            "up", "--interface", interface, "--no-dns", key=str(account.key.hex()), state=state
        )
        assert code == 0, out + err
        to_packet.append(await _first_stamp(pinger, log) - receipt)
        code, out, err = await world.nodus("down", key=str(account.key.hex()), state=state)
        assert code == 0, out + err
    print(f"\nsubscribe receipt -> usable config / first packet ({runs} runs, WireGuard, lab)")
    _print(("to 201 config", to_config), ("to first answer", to_packet))


async def _first_stamp(pinger: asyncio.subprocess.Process, log: Path) -> float:
    """The unix time of the first answered ping, waiting at most 2 s after the proof."""
    for _ in range(40):
        if _STAMP.search(_text(log)):
            break
        await asyncio.sleep(0.05)
    await stop_process(pinger)
    first = _STAMP.search(_text(log))
    assert first is not None, _text(log)
    return float(first.group(1))


async def _issued(http: httpx.AsyncClient, body: dict[str, str], headers: dict[str, str]) -> bool:
    answer = await http.post("/v1/configs", json=body, headers=headers)
    return answer.status_code == 201


def _text(path: Path) -> str:
    return path.read_text()


def _print(*series: tuple[str, list[float]]) -> None:
    """Medians, min and max; with NODUS_BENCH_JSON set, every value also goes to that file
    (scripts/bench's P3 reads it)."""
    out = os.environ.get("NODUS_BENCH_JSON")
    if out:
        path = Path(out)
        known = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**known, **dict(series)}))
    for name, values in series:
        print(
            f"  {name:18} median {statistics.median(values):.2f} s  "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
