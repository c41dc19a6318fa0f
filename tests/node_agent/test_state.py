"""state.json is written atomically (temp file + rename), 0600, and read back on restart; a
corrupt file is moved aside rather than trusted."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node_agent.config import Pools
from node_agent.state import AppliedState, StateStore, atomic_write
from node_agent.validate import parse_peers
from tests.node_agent.fake_control_plane import wg_peer

POOLS = Pools(ipaddress.IPv4Network("10.8.0.0/16"), ipaddress.IPv6Network("fd00:8::/112"))


def test_a_saved_state_loads_back_equal(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.ensure_directory()
    peers = parse_peers([wg_peer(2), wg_peer(3)], POOLS)
    state = AppliedState(revision=9, peers=peers, applied_at=datetime.now(UTC))

    store.save(state)

    assert store.load(POOLS) == state
    assert stat.S_IMODE(store.state_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert sorted(os.listdir(store.directory)) == ["state.json"]  # no temporary left behind
    assert json.loads(store.state_path.read_text())["revision"] == 9


def test_no_state_is_none(tmp_path: Path) -> None:
    assert StateStore(tmp_path).load(POOLS) is None


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"format": 99}',
        '{"format": 1, "revision": 1, "applied_at": "2030-01-01T00:00:00+00:00", '
        '"peers": [{"protocol": "wireguard", "public_key": "x"}]}',
    ],
)
def test_a_corrupt_state_is_moved_aside(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path)
    store.state_path.write_text(content)

    assert store.load(POOLS) is None
    assert not store.state_path.exists()
    assert (tmp_path / "state.json.bad").read_text() == content


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.json"
    atomic_write(target, b"old")

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.json"]


def test_status_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_status({"revision": 3, "fail_static": True})
    assert store.load_status() == {"revision": 3, "fail_static": True}
    store.status_path.write_text("garbage")
    assert store.load_status() is None
