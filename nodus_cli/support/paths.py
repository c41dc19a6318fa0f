"""Where `nodus` keeps the user's files: `$XDG_CONFIG_HOME/nodus/` (default `~/.config/nodus/`),
created with mode 0700; the files in it (keystore, token cache) are written with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

KEYSTORE_NAME: Final = "keystore.json"
TOKENS_NAME: Final = "tokens.json"


def config_dir() -> Path:
    """The XDG config directory of `nodus` (not created)."""
    base = os.environ.get("XDG_CONFIG_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "nodus"


def default_keystore() -> Path:
    return config_dir() / KEYSTORE_NAME


def write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` with mode 0600 from the first byte (a temporary file in the same
    directory, renamed over `path`), creating the directory with mode 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
