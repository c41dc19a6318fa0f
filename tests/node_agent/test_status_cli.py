"""`nodus-agent status` renders what the running agent recorded in its state directory."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from node_agent.cli import app, render_status
from node_agent.state import StateStore

runner = CliRunner()
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def status(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "running": True,
        "pid": os.getpid(),
        "version": "0.1.0",
        "node_id": "0x" + "ab" * 32,
        "control_plane": "http://cp",
        "started_at": (NOW - timedelta(hours=3)).isoformat(),
        "updated_at": (NOW - timedelta(seconds=2)).isoformat(),
        "health": "ok",
        "revision": 42,
        "applied_at": (NOW - timedelta(seconds=30)).isoformat(),
        "peers": 17,
        "peers_by_protocol": {"wireguard": 17, "openvpn": 0},
        "next_expiry": "2030-01-05T00:00:00+00:00",
        "last_sync_at": (NOW - timedelta(seconds=5)).isoformat(),
        "fail_static": False,
        "unreachable_since": None,
        "unreachable_reason": None,
        "rejected": None,
        "apply_error": None,
        "last_heartbeat_at": (NOW - timedelta(seconds=4)).isoformat(),
        "last_metrics_at": None,
        "errors": [],
    }
    document.update(changes)
    return document


def test_a_healthy_agent() -> None:
    text = "\n".join(render_status(status(), NOW))
    assert "running" in text
    assert f"pid {os.getpid()}" in text
    assert "revision     42 (applied 30s ago" in text
    assert "peers        17 (wireguard 17)" in text
    assert "last sync    5s ago" in text
    assert "fail-static  no" in text
    assert "metrics never" in text
    assert "errors       none" in text


def test_a_fail_static_agent_with_errors_and_a_rejected_revision() -> None:
    lines = render_status(
        status(
            running=False,
            fail_static=True,
            health="fail-static",
            unreachable_since=(NOW - timedelta(minutes=5)).isoformat(),
            unreachable_reason="unreachable: ConnectError",
            rejected={"revision": 43, "reason": "peers[3]: outside the pool [x]"},
            errors=[{"at": "t", "message": f"e{i}"} for i in range(7)],
        ),
        NOW,
    )
    text = "\n".join(lines)
    assert "not running" in text
    assert "fail-static  [yellow]YES[/yellow]" in text
    assert "unreachable since 5m ago" in text
    assert "ConnectError" in text
    rendered = io.StringIO()
    shown = Console(file=rendered, width=300)
    for line in lines:
        shown.print(line)
    assert "peers[3]: outside the pool [x]" in rendered.getvalue()  # not eaten as markup
    assert "7 recent" in text
    assert "e6" in text
    assert "e1" not in text


def test_the_command_reads_the_state_directory(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_status(status(fail_static=True))

    shown = runner.invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "fail-static  YES" in shown.stdout
    as_json = runner.invoke(app, ["status", "--state-dir", str(tmp_path), "--json"])
    assert json.loads(as_json.stdout)["revision"] == 42

    missing = runner.invoke(app, ["status", "--state-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
    assert "no status" in missing.output


def test_the_verdict_shows_its_reason_and_the_fix() -> None:
    healthy = "\n".join(
        render_status(status(verdict="ok", reason="ok", detail="17 peer(s)", fix="-"), NOW)
    )
    assert "verdict      [green]ok[/green] (ok): 17 peer(s)" in healthy
    assert "fix " not in healthy

    broken = status(
        verdict="fail",
        reason="interface_missing",
        detail="nodus0 does not exist",
        fix="let `nodus-agent run` create it",
    )
    text = "\n".join(render_status(broken, NOW))
    assert "verdict      [red]fail[/red] (interface_missing): nodus0 does not exist" in text
    assert "fix          let `nodus-agent run` create it" in text
