"""The user's wallet: a 0600 key file, an encrypted keystore (passphrase prompt or
NODUS_PASSPHRASE) or NODUS_PRIVATE_KEY. The key is never printed, logged or put in a message."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, cast

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount

from nodus_cli.support.output import UsageError


def load_account(key_file: Path | None) -> LocalAccount:
    """The signing key: `--key-file` (hex key with mode 0600, or an encrypted keystore), else
    NODUS_PRIVATE_KEY. Messages never include the key or the passphrase."""
    if key_file is not None:
        return _account_from_file(key_file)
    from_env = os.environ.get("NODUS_PRIVATE_KEY")
    if from_env:
        return _account_from_hex(from_env, "NODUS_PRIVATE_KEY")
    raise UsageError(
        "this command signs a transaction: pass --key-file PATH (a 0600 key file or an "
        "encrypted keystore) or set NODUS_PRIVATE_KEY"
    )


def _account_from_hex(text: str, source: str) -> LocalAccount:
    value = text.strip()
    value = value[2:] if value[:2].lower() == "0x" else value
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise UsageError(f"{source} does not hold a private key (expected 64 hex digits)")
    try:
        account: LocalAccount = Account.from_key(bytes.fromhex(value))
    except Exception:  # eth-keys rejects zero or out-of-range keys; its message is not needed
        raise UsageError(f"{source} does not hold a valid secp256k1 private key") from None
    return account


def _account_from_file(path: Path) -> LocalAccount:
    try:
        info = path.stat()
        raw = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"no key file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read key file {path}: {type(exc).__name__}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"key file {path} is not a regular file")
    keystore = _keystore(raw)
    if keystore is not None:
        return _account_from_keystore(path, keystore)
    if info.st_mode & 0o077:
        raise UsageError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    return _account_from_hex(raw, f"key file {path}")


def _keystore(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and ("crypto" in parsed or "Crypto" in parsed):
        return cast(dict[str, Any], parsed)
    return None


def _account_from_keystore(path: Path, keystore: dict[str, Any]) -> LocalAccount:
    passphrase = os.environ.get("NODUS_PASSPHRASE")
    if passphrase is None:
        if not sys.stdin.isatty():
            raise UsageError(f"{path} is an encrypted keystore: set NODUS_PASSPHRASE")
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    try:
        key = Account.decrypt(keystore, passphrase)
    except ValueError:
        raise UsageError(f"cannot decrypt keystore {path}: wrong passphrase?") from None
    except Exception:
        raise UsageError(f"{path} is not a keystore this version understands") from None
    account: LocalAccount = Account.from_key(key)
    return account
