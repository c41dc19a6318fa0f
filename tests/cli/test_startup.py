"""`nodus` starts fast: `--help`, a command's `--help` and `nodus version` list and describe
every command without loading the chain, wallet or server stack (web3, eth_account, siwe,
SQLAlchemy, FastAPI: over a second of imports on a small machine); each command loads what it
needs when it runs. And the sign-in message `nodus` writes itself is the one `siwe` writes and
parses (the API verifies with `siwe`)."""

from __future__ import annotations

import subprocess
import sys

import typer
from siwe import SiweMessage

from control_plane.paths import REPO_ROOT
from nodus_cli.app import app
from nodus_cli.support.session import siwe_message

HEAVY = ("web3", "eth_account", "siwe", "sqlalchemy", "fastapi", "aiohttp", "control_plane.chain")
# Runs `nodus ARGS` and then names the heavy modules it loaded (on stderr, at exit).
PROBE = (
    "import atexit, sys; "
    f"atexit.register(lambda: print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules), "
    "file=sys.stderr)); "
    "from nodus_cli.app import app; app(prog_name='nodus')"
)


def nodus(*args: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO_ROOT, capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin"},
        check=True, timeout=60,
    )  # fmt: skip
    return done.stdout, done.stderr


def test_help_lists_every_command_and_group_without_loading_the_chain_stack() -> None:
    out, err = nodus("--help")
    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"up", "down", "subscribe", "login", "version", "dao", "node", "rewards"} <= names
    for name in names:
        assert f" {name} " in out, name
    assert "LOADED []" in err


def test_up_help_shows_its_options_and_examples_without_loading_the_chain_stack() -> None:
    out, err = nodus("up", "--help")
    for option in ("--subscribe", "--country", "--kill-switch", "--api-url", "--key-file"):
        assert option in out
    assert "nodus up --config-only phone.conf --qr" in out
    assert "LOADED []" in err


def test_version_loads_nothing_heavy() -> None:
    out, err = nodus("version")
    assert out.startswith("nodus ")
    assert "LOADED []" in err


def test_the_sign_in_message_is_the_one_siwe_writes_and_parses() -> None:
    fields = {
        "domain": "api.example.org",
        "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "uri": "https://api.example.org/v1/auth/login",
        "chain_id": 31337,
        "nonce": "Zq3b9kLmP0aXv7Yt",
        "issued_at": "2026-12-05T00:40:00.000Z",
    }
    for statement in ("Sign in to Nodus.", ""):
        ours = siwe_message(statement=statement, **fields)  # type: ignore[arg-type]
        theirs = SiweMessage(statement=statement or None, version="1", **fields)
        assert ours == theirs.prepare_message()
        assert SiweMessage.from_message(ours).nonce == fields["nonce"]
