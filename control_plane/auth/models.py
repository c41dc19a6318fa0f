from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class AuthNonce(Base):
    """A sign-in nonce: issued by GET /v1/auth/nonce, consumed (deleted) by one login."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AgentChallenge(Base):
    """A challenge a node agent signs with its on-chain agent key; consumed by one login."""

    __tablename__ = "agent_challenges"

    challenge: Mapped[str] = mapped_column(String(128), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(66))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiKey(Base):
    """An automation key: only its lookup prefix and HMAC-SHA256 are stored, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(42), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
