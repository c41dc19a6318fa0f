from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db import Base


class AuthNonce(Base):
    """A sign-in nonce: issued by GET /v1/auth/nonce, consumed (deleted) by one login."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AgentChallenge(Base):
    """The open challenge of one node: its agent signs it with the on-chain agent key, and one
    login consumes it.

    One per node (the key), so a login that names only the node finds the challenge without
    guessing, and nobody can flood a node with challenges to crowd out its agent's: asking again
    while it is fresh returns the same text (harmless: only the agent key can sign it)."""

    __tablename__ = "agent_challenges"

    node_id: Mapped[str] = mapped_column(String(66), primary_key=True)  # 0x-hex, lower-case
    challenge: Mapped[str] = mapped_column(Text)  # the exact text the agent signs
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
