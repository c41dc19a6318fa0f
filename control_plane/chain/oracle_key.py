"""The oracle key and how its transactions are sent: `NODUS_*` settings, and the key from
NODUS_ORACLE_PRIVATE_KEY or an encrypted keystore file, held in a `SecretStr`, never logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("nodus.sender")


class OracleSettings(BaseSettings):
    """The oracle key and how its transactions are sent (`NODUS_*` variables)."""

    model_config = SettingsConfigDict(env_prefix="NODUS_", env_file=".env", extra="ignore")

    oracle_private_key: SecretStr | None = Field(
        default=None, description="hex private key of the oracle (or use a keystore file)"
    )
    oracle_keystore_file: Path | None = Field(
        default=None, description="encrypted JSON keystore of the oracle key"
    )
    oracle_keystore_password: SecretStr | None = None
    oracle_keystore_password_file: Path | None = None
    tx_stuck_seconds: float = Field(
        default=120.0, gt=0, description="pending this long -> replaced with higher fees"
    )
    tx_fee_bump_bps: int = Field(
        default=1_250, ge=1_250, description="fee increase of a replacement, basis points"
    )
    tx_max_fee_gwei: int = Field(
        default=500, ge=1, description="never offer more than this maxFeePerGas (gwei)"
    )
    tx_gas_margin_percent: int = Field(
        default=25, ge=0, le=200, description="added to the gas estimate"
    )
    tx_poll_seconds: float = Field(default=1.0, gt=0, description="receipt polling interval")
    tx_wait_timeout_seconds: float = Field(
        default=600.0, gt=0, description="how long a caller waits for a transaction to be mined"
    )
    tx_send_interval_seconds: float = Field(
        default=5.0, gt=0, description="interval of the sender job"
    )

    @property
    def configured(self) -> bool:
        return self.oracle_private_key is not None or self.oracle_keystore_file is not None


class OracleKeyError(Exception):
    """No oracle key is configured, or it cannot be loaded (the message never holds secrets)."""


def load_oracle_account(settings: OracleSettings) -> LocalAccount:
    """The oracle key, from NODUS_ORACLE_PRIVATE_KEY or the keystore file and its password."""
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


_keystore_accounts: dict[tuple[str, int], LocalAccount] = {}


def _load_keystore(path: Path, password: str) -> LocalAccount:
    """Decrypts the keystore once per file version (its KDF takes about a second)."""
    try:
        cache_key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError as exc:
        raise OracleKeyError(f"cannot read the oracle keystore {path}: {exc.strerror}") from None
    cached = _keystore_accounts.get(cache_key)
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
    _keystore_accounts[cache_key] = account
    return account
