"""The node's two keys: the agent's Ethereum key (its on-chain hot key, which signs the control
plane's challenges) and the WireGuard interface's X25519 key pair. Both files are created 0600,
never overwritten unless asked."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak


class KeyFileError(ValueError):
    """A key file is missing, unreadable, or needs a passphrase that was not given."""


def write_secret(path: Path, content: str, *, overwrite: bool = False) -> None:
    """Writes `content` to a new 0600 file (its directory made 0700 if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} exists; refusing to overwrite a key (use --force)") from exc
    with os.fdopen(fd, "w") as out:
        out.write(content)
    path.chmod(0o600)


# --- WireGuard ---------------------------------------------------------------------------------


def generate_wireguard_private_key() -> str:
    """A Curve25519 private key as `wg genkey` prints it (clamped, base64)."""
    raw = bytearray(X25519PrivateKey.generate().private_bytes_raw())
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return base64.b64encode(bytes(raw)).decode()


def wireguard_public_key(private_key: str) -> str:
    """What `wg pubkey` prints for `private_key`."""
    try:
        raw = base64.b64decode(private_key.strip(), validate=True)
        key = X25519PrivateKey.from_private_bytes(raw)
    except ValueError as exc:
        raise KeyFileError("not a WireGuard private key (base64 of 32 bytes)") from exc
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def read_wireguard_private_key(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read the WireGuard key {path}: {exc.strerror}") from exc


# --- the agent's Ethereum key ------------------------------------------------------------------


def create_agent_key(path: Path, passphrase: str | None, *, overwrite: bool = False) -> str:
    """Makes a new agent key at `path`: an encrypted keystore (scrypt, as geth writes it) if a
    passphrase is given, else the raw hex key in a 0600 file. Returns its address."""
    account: LocalAccount = Account.create()
    if passphrase:
        keystore = Account.encrypt(account.key, passphrase)
        write_secret(path, json.dumps(keystore), overwrite=overwrite)
    else:
        write_secret(path, account.key.hex() + "\n", overwrite=overwrite)
    address: str = account.address
    return address


def load_agent_key(path: Path, passphrase: str | None) -> LocalAccount:
    """The agent key from a keystore JSON (needs `passphrase`) or a raw hex file."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read the agent key {path}: {exc.strerror}") from exc
    if text.startswith("{"):
        if not passphrase:
            raise KeyFileError(f"{path} is an encrypted keystore: set NODUS_AGENT_PASSPHRASE")
        try:
            key = Account.decrypt(json.loads(text), passphrase)
        except ValueError as exc:
            raise KeyFileError(f"cannot decrypt {path}: {exc}") from exc
        account: LocalAccount = Account.from_key(key)
        return account
    try:
        account = Account.from_key(text)
    except ValueError as exc:
        raise KeyFileError(f"{path} holds neither a keystore nor a hex private key") from exc
    return account


def node_id_of(operator: str, salt: bytes) -> str:
    """`NodeRegistry.nodeIdOf`: the id `operator` gets by registering with the 32-byte `salt`,
    keccak256(abi.encode(operator, salt)). Nobody else can register it."""
    return "0x" + keccak(abi_encode(["address", "bytes32"], [operator, salt])).hex()
