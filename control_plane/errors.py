"""One error shape for every failure: `{"error": {"code": "...", "message": "..."}}`.

Services raise `AppError` subclasses (here, with `error_body` and `error_response`: a leaf that
imports no web framework or database, so `nodus` can share the classes without loading either).
The handlers that give FastAPI's own errors, database failures and anything unexpected the same
shape are in `error_handlers.py`.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error a client can act on: an HTTP status, a stable code and a readable message."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class Unauthorized(AppError):
    status_code, code = 401, "unauthorized"


class Forbidden(AppError):
    status_code, code = 403, "forbidden"


class NotFound(AppError):
    status_code, code = 404, "not_found"


class Conflict(AppError):
    status_code, code = 409, "conflict"


class NodeMisconfigured(Conflict):
    """A stored node value is outside its grammar: no config is written with it."""

    code = "node_misconfigured"


class NodeNotActive(Conflict):
    """The node is exiting or gone on-chain (per the indexer): its operator cannot change it."""

    code = "node_not_active"


class EndpointInUse(Conflict):
    code = "endpoint_in_use"


class ConfigRevoked(AppError):
    """The device's config was revoked by its node's operator (protocol turned off, or node
    deleted): the device must be told why and what to do, not get a 404."""

    status_code, code = 410, "config_revoked"


class PaymentRequired(AppError):
    status_code, code = 402, "payment_required"


class Invalid(AppError):
    status_code, code = 422, "invalid"


class RateLimited(AppError):
    status_code, code = 429, "rate_limited"


class EndpointNotPublic(Invalid):
    """A node endpoint on a loopback, private, link-local or reserved address (addresses.py)."""

    code = "endpoint_not_public"


class NodeKeyRefused(Invalid):
    """A device config with the node's own WireGuard key would make the node its own peer."""

    code = "node_key_refused"


class PayloadTooLarge(AppError):
    """A body over the size limit (raised as a response by BodyLimitMiddleware, before routing)."""

    status_code, code = 413, "payload_too_large"


class ShuttingDown(AppError):
    status_code, code = 503, "shutting_down"

    def __init__(self, message: str = "this replica is shutting down; retry") -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class ChainUnavailable(AppError):
    status_code, code = 503, "chain_unavailable"

    def __init__(self, message: str = "the chain RPC is unreachable; retry shortly") -> None:
        super().__init__(message, headers={"Retry-After": "5"})


def error_body(code: str, message: str, **extra: object) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    description: str, error: type[AppError] | None = None, example: str | None = None
) -> dict[str, Any]:
    """A route's `responses=` entry: the description, and for an `error` class an example body
    with that class's code and the `example` message (the one place routers document errors)."""
    if error is None or example is None:
        return {"description": description}
    return {
        "description": description,
        "content": {"application/json": {"example": error_body(error.code, example)}},
    }
