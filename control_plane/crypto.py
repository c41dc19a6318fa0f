"""Encryption at rest for key material the control plane must keep (OpenVPN CA and server keys,
tls-crypt keys): Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from NODUS_DATA_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet

from control_plane.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    digest = hashlib.sha256(b"nodus-data-key:" + settings.data_key.get_secret_value().encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def encrypt(settings: Settings, plaintext: bytes) -> bytes:
    return _fernet(settings).encrypt(plaintext)


def decrypt(settings: Settings, ciphertext: bytes) -> bytes:
    return _fernet(settings).decrypt(ciphertext)
