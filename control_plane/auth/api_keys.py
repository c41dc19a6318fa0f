"""API keys for automation: `nds_<prefix>_<secret>`, usable wherever the owner's JWT is.

The server keeps only the public lookup prefix and HMAC-SHA256(api_key_secret, whole key), so a
copy of the database alone cannot produce a working key. A key is shown once, at creation.
A key authenticates as its owner with the roles the owner holds *now* (recomputed on each use,
as at login), so a key does not keep the operator role after the node leaves."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth import repository
from control_plane.auth.principal import Principal
from control_plane.auth.schemas import ApiKeyCreatedOut, ApiKeyList, ApiKeyOut
from control_plane.auth.service import wallet_roles
from control_plane.errors import Conflict, NotFound, Unauthorized
from control_plane.settings import Settings

PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = 8
SECRET_BYTES = 32  # 256 bits; 43 characters of URL-safe base64
KEY_PATTERN = re.compile(r"nds_([a-z0-9]{8})_([A-Za-z0-9_-]{43})")
# A bounded list needs no pagination, and a leaked session cannot mint keys without end.
MAX_LIVE_KEYS_PER_OWNER = 25
# `last_used_at` is a hint for the owner; writing it on every request would cost a row write
# (and a row lock) per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_PREFIX_ATTEMPTS = 5


def _digest(settings: Settings, key: str) -> bytes:
    secret = settings.api_key_secret.get_secret_value().encode()
    return hmac.new(secret, key.encode(), hashlib.sha256).digest()


async def create_api_key(
    session: AsyncSession, settings: Settings, owner: str, name: str
) -> ApiKeyCreatedOut:
    if await repository.count_live_api_keys(session, owner) >= MAX_LIVE_KEYS_PER_OWNER:
        raise Conflict(
            f"you have {MAX_LIVE_KEYS_PER_OWNER} live API keys, the most allowed; revoke one"
        )
    for _ in range(_PREFIX_ATTEMPTS):
        prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
        key = f"nds_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        row = await repository.insert_api_key(session, owner, name, prefix, _digest(settings, key))
        if row is not None:
            return ApiKeyCreatedOut(
                id=row.id, name=row.name, prefix=row.prefix, key=key, created_at=row.created_at
            )
    # 36^8 prefixes: five collisions in a row means something else is wrong.
    raise Conflict("could not allocate a key prefix; try again")  # pragma: no cover


async def list_api_keys(session: AsyncSession, owner: str) -> ApiKeyList:
    rows = await repository.live_api_keys(session, owner)
    return ApiKeyList(items=[ApiKeyOut.model_validate(row) for row in rows])


async def revoke_api_key(session: AsyncSession, owner: str, key_id: uuid.UUID) -> None:
    """Revokes at once (the next request with the key is a 401). Another owner's key, an
    unknown id and an already revoked key are all the same 404: ids reveal nothing."""
    if not await repository.revoke_api_key(session, owner, key_id):
        raise NotFound("no such API key")


async def principal_for_api_key(session: AsyncSession, settings: Settings, key: str) -> Principal:
    """The key's owner, with the roles the owner holds now; any failure is one 401."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    row = await repository.api_key_by_prefix(session, match.group(1))
    digest = _digest(settings, key)
    # compare_digest even when the prefix is unknown keeps the timing of the two cases alike.
    stored = row.secret_hash if row is not None else bytes(len(digest))
    if not hmac.compare_digest(stored, digest) or row is None or row.revoked_at is not None:
        raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    await repository.mark_api_key_used(session, row.id, LAST_USED_RESOLUTION)
    return Principal(subject=row.owner, roles=await wallet_roles(session, settings, row.owner))
