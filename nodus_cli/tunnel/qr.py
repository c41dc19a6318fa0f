"""The config as a QR code (segno): in the terminal, or as a PNG, for the WireGuard phone app."""

from __future__ import annotations

import io
from pathlib import Path

import segno


def terminal(config: str) -> str:
    code = segno.make(config, error="l", micro=False)
    out = io.StringIO()
    code.terminal(out=out, compact=True)
    return out.getvalue()


def write_png(config: str, path: Path) -> None:
    code = segno.make(config, error="l", micro=False)
    code.save(str(path), kind="png", scale=6, border=4)
    path.chmod(0o600)  # it holds the private key
