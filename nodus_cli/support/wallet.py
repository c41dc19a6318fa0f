"""The user's wallet: a 0600 key file, an encrypted keystore (password prompt,
NODUS_KEYSTORE_PASSWORD or NODUS_PASSPHRASE), NODUS_PRIVATE_KEY, or else the keystore that
`nodus account new|import` wrote under the XDG config dir. The key is never printed, logged or
put in a message."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import typer

from nodus_cli.support.output import UsageError
from nodus_cli.support.paths import default_keystore

# eth_account loads only when a key is used (inside the functions below).
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

NO_KEY_NEXT_STEP: Final = (
    "run `nodus account new` (or `nodus account import`), or pass --key-file PATH, or set "
    "NODUS_PRIVATE_KEY"
)


def load_account(key_file: Path | None) -> LocalAccount:
    """The signing key: `--key-file` (hex key with mode 0600, or an encrypted keystore), else
    NODUS_PRIVATE_KEY, else the default keystore. Messages never include the key or the
    password."""
    if key_file is not None:
        return _account_from_file(key_file)
    from_env = os.environ.get("NODUS_PRIVATE_KEY")
    if from_env:
        return account_from_hex(from_env, "NODUS_PRIVATE_KEY")
    keystore = default_keystore()
    if keystore.exists():
        return _account_from_file(keystore)
    raise UsageError(f"no key: there is no keystore at {keystore}", NO_KEY_NEXT_STEP)


def has_key(key_file: Path | None) -> bool:
    """Whether a key is configured at all (`load_account` would not say "no key")."""
    return (
        key_file is not None
        or bool(os.environ.get("NODUS_PRIVATE_KEY"))
        or default_keystore().exists()
    )


def address_of_key(key_file: Path | None) -> ChecksumAddress:
    """The address `load_account` would sign with; a keystore's is read from its `address`
    field, without asking for the password."""
    path = key_file
    if path is None and not os.environ.get("NODUS_PRIVATE_KEY") and default_keystore().exists():
        path = default_keystore()
    if path is not None:
        try:
            keystore = _keystore(path.read_text())
        except (OSError, UnicodeDecodeError):
            keystore = None
        stated = keystore.get("address") if keystore else None
        if isinstance(stated, str) and re.fullmatch(r"(0x)?[0-9a-fA-F]{40}", stated):
            from eth_utils.address import to_checksum_address

            return to_checksum_address(stated if stated.startswith("0x") else "0x" + stated)
    return load_account(key_file).address


def keystore_password(what: str, *, confirm: bool = False) -> str:
    """The keystore password: NODUS_KEYSTORE_PASSWORD (or NODUS_PASSPHRASE), else a hidden
    prompt on a terminal (typed twice with `confirm`)."""
    for name in ("NODUS_KEYSTORE_PASSWORD", "NODUS_PASSPHRASE"):
        value = os.environ.get(name)
        if value is not None:
            return value
    if not sys.stdin.isatty():
        raise UsageError(
            f"{what} needs the keystore password and there is no terminal to ask on",
            "set NODUS_KEYSTORE_PASSWORD",
        )
    password: str = typer.prompt(
        f"Password for {what}", hide_input=True, confirmation_prompt=confirm
    )
    return password


def account_from_hex(text: str, source: str) -> LocalAccount:
    value = text.strip()
    value = value[2:] if value[:2].lower() == "0x" else value
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise UsageError(f"{source} does not hold a private key (expected 64 hex digits)")
    from eth_account import Account

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
    return account_from_hex(raw, f"key file {path}")


def _keystore(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if isinstance(parsed, dict) and ("crypto" in parsed or "Crypto" in parsed):
        return cast(dict[str, Any], parsed)
    return None


def _account_from_keystore(path: Path, keystore: dict[str, Any]) -> LocalAccount:
    from eth_account import Account

    passphrase = keystore_password(str(path))
    try:
        key = Account.decrypt(keystore, passphrase)
    except ValueError:
        raise UsageError(
            f"cannot decrypt keystore {path}: wrong password",
            "check NODUS_KEYSTORE_PASSWORD (or retype it at the prompt)",
        ) from None
    except Exception:
        raise UsageError(f"{path} is not a keystore this version understands") from None
    account: LocalAccount = Account.from_key(key)
    return account
