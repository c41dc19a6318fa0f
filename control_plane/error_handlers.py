"""The app's error handlers: `AppError`s, FastAPI's own validation and HTTP errors, and the
database's failures answer in the one shape of errors.py; anything unexpected becomes a 500 with
no detail (and one log line with the request id). A database that cannot be reached, is frozen or
is restarting is a 503 `database_unavailable` with `Retry-After`, on every route, logged as one
line without a traceback.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from control_plane.errors import AppError, error_body

log = logging.getLogger("nodus.errors")

TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
# The database is not answering: connection exceptions (class 08), too many connections, a
# statement cancelled by statement_timeout, and the server shutting down or starting up.
UNAVAILABLE_SQLSTATES = {"53300", "57014", "57P01", "57P02", "57P03"}
DATABASE_RETRY_AFTER_SECONDS = 5
_DATABASE_MODULES = ("asyncpg", "sqlalchemy")


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(exc, "sqlstate", None) or "")


def _raised_by_database_driver(exc: BaseException) -> bool:
    """An OSError or TimeoutError raised inside asyncpg or SQLAlchemy (not by the chain client,
    which maps its own failures to ChainUnavailable)."""
    return any(
        str(frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or an exception it was raised from, says the database is unreachable or
    did not answer in time (rather than refusing a statement)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlstate = _sqlstate(current)
        if sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES:
            return True
        if isinstance(current, PoolTimeout):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        module = type(current).__module__
        if module.startswith("asyncpg") and type(current).__name__ in {
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "InternalClientError",
        }:
            return True
        if isinstance(current, (OSError, TimeoutError)) and _raised_by_database_driver(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def database_unavailable_body() -> dict[str, Any]:
    return error_body(
        "database_unavailable",
        "the database is not answering (down, restarting or overloaded); nothing was changed "
        "unless a later read shows it; retry after the Retry-After seconds",
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. (Starlette's 405 names only the methods of
    the first route that matched the path, and FastAPI has one route per method.)"""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(f['loc'])}: {f['message']}" for f in fields[:5])
        return JSONResponse(error_body("invalid", message, fields=fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI could not decode the body (not UTF-8 JSON text): invalid input, like any
            # other malformed body.
            message = "body: not JSON text in UTF-8"
            fields = [{"loc": ["body"], "message": message}]
            return JSONResponse(error_body("invalid", message, fields=fields), status_code=422)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(request, exc)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # A deadlock or serialization failure between concurrent requests is transient: the
        # transaction was rolled back whole, so the client can simply retry.
        sqlstate = _sqlstate(exc)
        if sqlstate in TRANSIENT_SQLSTATES:
            return JSONResponse(
                error_body("retry", "a concurrent request conflicted; retry"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        if sqlstate.startswith("22"):  # data exception: a value the database cannot hold
            return JSONResponse(
                error_body("invalid", "a value is out of range or not representable"),
                status_code=422,
            )
        return await _unexpected(request, exc)

    # Every other database-shaped failure (the pool's acquire timeout, asyncpg's own errors, a
    # refused or timed-out connection) goes through the same classification.
    for raised in (SQLAlchemyError, OSError, TimeoutError):
        app.add_exception_handler(raised, _unexpected)


def unexpected_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The answer to an exception no handler claimed: 503 if the database is unavailable, else
    500. Either way exactly one log line (the 500 with its traceback), and nothing re-raised, so
    the server does not log it a second time."""
    request_id = getattr(request.state, "request_id", None)
    if database_unavailable(exc):
        log.warning(
            "database unavailable: %s: %s",
            type(exc).__name__,
            str(exc)[:200] or "no answer",
            extra={"request_id": request_id},
        )
        return JSONResponse(
            database_unavailable_body(),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    return JSONResponse(
        error_body("internal", "internal error; it has been logged"), status_code=500
    )
