"""The WireGuard backend's logic without an interface: reading `wg show dump`, the difference
between desired and live peers, and the `wg set` batches (a real interface: tests/e2e)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from node_agent.backends.commands import CommandError, CommandRunner
from node_agent.backends.wireguard import (
    WireGuardBackend,
    diff_peers,
    normalize_ips,
    parse_dump,
    set_commands,
)
from node_agent.keys import generate_wireguard_private_key, wireguard_public_key
from node_agent.peers import OpenVpnPeer, WireGuardPeer
from tests.node_agent.fake_control_plane import wg_key

LATER = datetime.now(UTC) + timedelta(days=1)


def dump_text(private: str, public: str, port: int, *peers: tuple[str, str, int, int, int]) -> str:
    lines = [f"{private}\t{public}\t{port}\toff"]
    for key, ips, handshake, rx, tx in peers:
        lines.append(f"{key}\t(none)\t198.18.0.2:4000\t{ips}\t{handshake}\t{rx}\t{tx}\toff")
    return "\n".join(lines) + "\n"


def test_parse_dump_reads_the_interface_and_its_peers() -> None:
    a, b = wg_key(), wg_key()
    dump = parse_dump(
        dump_text("priv", "pub", 51820, (a, "10.8.0.2/32,fd00:8:0:0::2/128", 1700000000, 5, 7),
                  (b, "(none)", 0, 0, 0))
    )  # fmt: skip

    assert dump.public_key == "pub"
    assert dump.listen_port == 51820
    assert dump.peers[a].allowed_ips == {"10.8.0.2/32", "fd00:8:0:0::2/128"}  # as wg wrote it
    assert dump.peers[a].last_handshake_at == 1700000000
    assert (dump.peers[a].rx_bytes, dump.peers[a].tx_bytes) == (5, 7)
    assert dump.peers[b].allowed_ips == frozenset()
    assert dump.peers[b].last_handshake_at is None
    assert parse_dump("(none)\t(none)\t0\toff\n").public_key is None


@pytest.mark.parametrize("text", ["", "a\tb\n", "a\tb\tc\td\nx\ty\n"])
def test_parse_dump_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(CommandError):
        parse_dump(text)


def test_diff_touches_only_what_changed() -> None:
    keep, move, gone, new = wg_key(), wg_key(), wg_key(), wg_key()
    live = {
        keep: normalize_ips(["10.8.0.2/32"]),
        move: normalize_ips(["10.8.0.3/32"]),
        gone: normalize_ips(["10.8.0.4/32"]),
    }
    desired = {
        keep: normalize_ips(["10.8.0.2/32"]),
        move: normalize_ips(["10.8.0.5/32"]),
        new: normalize_ips(["10.8.0.4/32"]),  # the removed peer's address, reused
    }

    change = diff_peers(desired, live)

    assert change.remove == (gone,)
    assert dict(change.upsert) == {move: ("10.8.0.5/32",), new: ("10.8.0.4/32",)}
    assert diff_peers(desired, desired).empty
    # Another spelling of the same networks is no change.
    spelled = {keep: frozenset({"10.8.0.2/32", "fd00:8:0:0::2/128"})}
    assert diff_peers({keep: frozenset({"fd00:8::2/128", "10.8.0.2/32"})}, spelled).empty


def test_set_commands_batch_removals_first_and_chunk() -> None:
    removals = tuple(wg_key() for _ in range(3))
    upserts = tuple((wg_key(), (f"10.8.{i // 256}.{i % 256}/32",)) for i in range(2500))
    change = diff_peers({}, {})
    change = type(change)(removals, upserts)

    commands = set_commands("wg", "nodus0", change, max_peers=1000)

    assert [c[:3] for c in commands] == [["wg", "set", "nodus0"]] * 3
    assert [c.count("peer") for c in commands] == [1000, 1000, 503]
    assert commands[0][3:6] == ["peer", removals[0], "remove"]
    flat = [arg for c in commands for arg in c]
    assert flat.index(removals[-1]) < flat.index(upserts[0][0])
    # A byte budget splits too.
    small = set_commands("wg", "nodus0", change, max_peers=10_000, max_bytes=20_000)
    assert len(small) > 3
    assert all(sum(len(a) + 1 for a in c) <= 20_000 for c in small)


def test_set_commands_empty_change_runs_nothing_unless_the_interface_needs_fixing() -> None:
    change = diff_peers({}, {})
    assert set_commands("wg", "nodus0", change) == []
    assert set_commands("wg", "nodus0", change, interface_args=["listen-port", "1"]) == [
        ["wg", "set", "nodus0", "listen-port", "1"]
    ]


class ScriptedRunner(CommandRunner):
    """Answers `wg show dump` with a scripted interface and records every other command."""

    def __init__(self, dump: str) -> None:
        super().__init__(prefix=("ip", "netns", "exec", "ns"))
        self.dump = dump
        self.commands: list[list[str]] = []

    async def run(self, args: Sequence[str], stdin: bytes | None = None) -> str:
        self.processes += 1
        if list(args[1:2]) == ["show"]:
            return self.dump
        self.commands.append(list(args))
        return ""


async def test_apply_sends_one_batch_with_only_the_difference(tmp_path: Path) -> None:
    private = generate_wireguard_private_key()
    key_file = tmp_path / "wg.key"
    key_file.write_text(private)
    public = wireguard_public_key(private)
    keep, gone, new = wg_key(), wg_key(), wg_key()
    runner = ScriptedRunner(
        dump_text(private, public, 51820, (keep, "10.8.0.2/32,fd00:8::2/128", 0, 0, 0),
                  (gone, "10.8.0.3/32", 0, 0, 0))
    )  # fmt: skip
    backend = WireGuardBackend(
        "nodus0", runner=runner, private_key_file=key_file, listen_port=51820
    )
    peers = (
        WireGuardPeer(keep, ("10.8.0.2/32", "fd00:8:0::2/128"), LATER),
        WireGuardPeer(new, ("10.8.0.4/32",), LATER),
        OpenVpnPeer("abc", ("10.8.0.5/32",), LATER),  # another backend's
    )

    await backend.apply(peers)

    assert runner.commands == [
        ["wg", "set", "nodus0", "peer", gone, "remove", "peer", new, "allowed-ips", "10.8.0.4/32"]
    ]
    assert backend.last_apply is not None
    assert (backend.last_apply.added, backend.last_apply.updated) == (1, 0)
    assert (backend.last_apply.removed, backend.last_apply.processes) == (1, 2)

    runner.commands.clear()
    runner.dump = dump_text("(none)", "(none)", 0, (keep, "10.8.0.2/32,fd00:8::2/128", 0, 0, 0))
    await backend.apply(peers[:1])  # a restarted wireguard-go lost its key and port
    assert runner.commands == [
        ["wg", "set", "nodus0", "private-key", str(key_file), "listen-port", "51820"]
    ]


async def test_stats_come_from_the_dump() -> None:
    key = wg_key()
    runner = ScriptedRunner(dump_text("p", "q", 1, (key, "10.8.0.2/32", 1700000000, 10, 20)))
    stats = await WireGuardBackend("nodus0", runner=runner).stats()
    assert [(s.key, s.last_handshake_at, s.rx_bytes, s.tx_bytes) for s in stats] == [
        (key, 1700000000.0, 10, 20)
    ]


async def test_command_runner_reports_failures_and_uses_its_prefix() -> None:
    runner = CommandRunner(prefix=("env", "X=1"))
    assert (await runner.run(["sh", "-c", "echo $X"])).strip() == "1"
    with pytest.raises(CommandError, match="boom"):
        await runner.run(["sh", "-c", "echo boom >&2; exit 3"])
    with pytest.raises(CommandError, match="cannot start"):
        await CommandRunner().run(["/nonexistent/wg"])
    with pytest.raises(CommandError, match="no answer"):
        await CommandRunner(timeout=0.1).run(["sleep", "5"])
