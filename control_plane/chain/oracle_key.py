"""The oracle key, from NODUS_ORACLE_PRIVATE_KEY or an encrypted keystore file (the `oracle`
section of the settings), held in a `SecretStr`, never logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from control_plane.chain.caches import KeystoreCache
from control_plane.settings import OracleSettings

log = logging.getLogger("nodus.sender")


class OracleKeyError(Exception):
    """No oracle key is configured, or it cannot be loaded (the message never holds secrets)."""


def load_oracle_account(
    settings: OracleSettings, keystores: KeystoreCache | None = None
) -> LocalAccount:
    """The oracle key, from NODUS_ORACLE_PRIVATE_KEY or the keystore file and its password (a
    keystore is decrypted once per file version in `keystores`, the app's cache)."""
    if settings.oracle_private_key is not None:
        try:
            account: LocalAccount = Account.from_key(
                settings.oracle_private_key.get_secret_value().strip()
            )
        except (ValueError, TypeError):
            raise OracleKeyError("NODUS_ORACLE_PRIVATE_KEY is not a valid private key") from None
        return account
    if settings.oracle_keystore_file is None:
        raise OracleKeyError(
            "no oracle key: set NODUS_ORACLE_PRIVATE_KEY or NODUS_ORACLE_KEYSTORE_FILE"
        )
    return _load_keystore(
        settings.oracle_keystore_file,
        _keystore_password(settings),
        keystores if keystores is not None else KeystoreCache(),
    )


def _keystore_password(settings: OracleSettings) -> str:
    if settings.oracle_keystore_password is not None:
        return settings.oracle_keystore_password.get_secret_value()
    if settings.oracle_keystore_password_file is not None:
        try:
            return settings.oracle_keystore_password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise OracleKeyError(
                f"cannot read the keystore password file: {exc.strerror}"
            ) from None
    raise OracleKeyError(
        "the oracle keystore needs NODUS_ORACLE_KEYSTORE_PASSWORD or _PASSWORD_FILE"
    )


def _load_keystore(path: Path, password: str, keystores: KeystoreCache) -> LocalAccount:
    """Decrypts the keystore once per file version (its KDF takes about a second)."""
    try:
        cache_key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError as exc:
        raise OracleKeyError(f"cannot read the oracle keystore {path}: {exc.strerror}") from None
    cached = keystores.get(cache_key)
    if cached is not None:
        return cached
    try:
        keystore = json.loads(path.read_text())
    except OSError as exc:
        raise OracleKeyError(f"cannot read the oracle keystore {path}: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise OracleKeyError(f"the oracle keystore {path} is not JSON") from None
    try:
        key = Account.decrypt(keystore, password)
    except ValueError:
        raise OracleKeyError(f"cannot decrypt the oracle keystore {path}") from None
    account: LocalAccount = Account.from_key(key)
    keystores.put(cache_key, account)
    return account
