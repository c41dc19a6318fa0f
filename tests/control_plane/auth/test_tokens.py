"""Access tokens are checked strictly: pinned algorithm, audience, issuer, expiry required."""

from __future__ import annotations

import base64
import json
import secrets
import time
import warnings
from typing import Any

import httpx
import jwt
import pytest

from control_plane.settings import Settings


def _claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "0x" + "ab" * 20,
        "roles": ["admin", "subscriber"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _signed(settings: Settings, **changes: Any) -> str:
    secret = settings.jwt_secret.get_secret_value()
    return jwt.encode(_claims(settings, **changes), secret, algorithm="HS256")


def _forge(settings: Settings, kind: str) -> str:
    secret = settings.jwt_secret.get_secret_value()
    match kind:
        case "alg-none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings))}."
        case "other-secret":
            return jwt.encode(_claims(settings), secrets.token_urlsafe(32), algorithm="HS256")
        case "other-algorithm":
            with warnings.catch_warnings():  # the short key is fine for this test's purpose
                warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
                return jwt.encode(_claims(settings), secret, algorithm="HS512")
        case "wrong-audience":
            return _signed(settings, aud="someone-else")
        case "wrong-issuer":
            return _signed(settings, iss="someone-else")
        case "expired":
            return _signed(settings, iat=int(time.time()) - 1000, exp=int(time.time()) - 60)
        case "no-exp":
            return _signed(settings, exp=None)
        case "unknown-role":
            return _signed(settings, roles=["root"])
        case "garbage":
            return "not.a.jwt"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "alg-none",
        "other-secret",
        "other-algorithm",
        "wrong-audience",
        "wrong-issuer",
        "expired",
        "no-exp",
        "unknown-role",
        "garbage",
    ],
)
async def test_forged_or_stale_token_is_401(
    client: httpx.AsyncClient, settings: Settings, kind: str
) -> None:
    response = await client.get(
        "/v1/auth/me", headers={"authorization": f"Bearer {_forge(settings, kind)}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_well_formed_token_is_accepted(client: httpx.AsyncClient, settings: Settings) -> None:
    # The control for the cases above: only the one property under test differs.
    response = await client.get(
        "/v1/auth/me", headers={"authorization": f"Bearer {_signed(settings)}"}
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["admin", "subscriber"]


@pytest.mark.parametrize("header", ["", "Basic abc", "Bearer", "Bearer "])
async def test_missing_credential_is_401(client: httpx.AsyncClient, header: str) -> None:
    headers = {"authorization": header} if header else {}
    response = await client.get("/v1/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
