"""Access tokens: HS256 JWTs with a pinned algorithm, audience, issuer and expiry, all required
on decode (so `alg=none`, another audience or a token without `exp` is rejected)."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

import jwt

from control_plane.auth.principal import Principal, Role
from control_plane.errors import Unauthorized
from control_plane.settings import Settings

ALGORITHM = "HS256"


def issue_access_token(settings: Settings, principal: Principal) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": principal.subject,
        "roles": sorted(principal.roles),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if principal.node_id is not None:
        claims["node_id"] = principal.node_id
    if principal.agent is not None:
        claims["agent"] = principal.agent
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def _decode(settings: Settings, token: str) -> tuple[Principal, int]:
    """The token's principal and expiry (unix seconds), or a 401."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        roles = frozenset(Role(r) for r in claims.get("roles", []))
        expires = int(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("invalid or expired access token") from exc
    node_id = claims.get("node_id")
    agent = claims.get("agent")
    principal = Principal(
        subject=str(claims["sub"]),
        roles=roles,
        node_id=node_id,
        agent=agent if isinstance(agent, str) else None,
    )
    return principal, expires


MAX_VERIFIED_TOKENS = 100_000


class VerifiedTokens:
    """Access tokens this replica has verified, until their expiry: a node agent polls with
    the same token every few seconds, and pyjwt's decode costs more than the rest of an
    unchanged poll. Keyed by the exact token string (a token differing in any byte is decoded
    afresh); bounded, the least recently used going first."""

    def __init__(self, limit: int = MAX_VERIFIED_TOKENS) -> None:
        self.limit = limit
        self._tokens: OrderedDict[str, tuple[int, Principal]] = OrderedDict()

    def known(self, token: str) -> Principal | None:
        """The token's principal if it was verified here and has not expired, else None."""
        known = self._tokens.get(token)
        if known is None or known[0] <= time.time():
            return None
        self._tokens.move_to_end(token)
        return known[1]

    def principal(self, settings: Settings, token: str) -> Principal:
        """The token's principal (verified here before, or now), or a 401."""
        known = self.known(token)
        if known is not None:
            return known
        principal, expires = _decode(settings, token)
        self._tokens[token] = (expires, principal)
        self._tokens.move_to_end(token)
        while len(self._tokens) > self.limit:
            self._tokens.popitem(last=False)
        return principal
