"""Access tokens: HS256 JWTs with a pinned algorithm, audience, issuer and expiry, all required
on decode (so `alg=none`, another audience or a token without `exp` is rejected)."""

from __future__ import annotations

import time
import uuid

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


def decode_access_token(settings: Settings, token: str) -> Principal:
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
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("invalid or expired access token") from exc
    node_id = claims.get("node_id")
    agent = claims.get("agent")
    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        node_id=node_id,
        agent=agent if isinstance(agent, str) else None,
    )
