"""The OpenAPI document as a contract: security schemes per operation, the one error shape on
every error response, and the bounds that come from settings.

Security: the auth dependencies (auth/dependencies.py) depend on the scheme objects below, so
FastAPI lists on each operation exactly the credentials it accepts (alternatives). The schemes
only document: they never reject (auto_error=False); auth/dependencies.py authenticates.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from control_plane.patterns import INT64_MAX
from control_plane.settings import Settings

# Names of the security schemes in the document (not secrets).
WALLET_TOKEN = "walletToken"  # noqa: S105
NODE_TOKEN = "nodeToken"  # noqa: S105
API_KEY = "apiKey"

wallet_token_scheme = HTTPBearer(
    scheme_name=WALLET_TOKEN,
    bearerFormat="JWT",
    description="A wallet's access token from `POST /v1/auth/login` (Sign-In with Ethereum). "
    "Its roles (subscriber, operator, admin) decide what it may do.",
    auto_error=False,
)
node_token_scheme = HTTPBearer(
    scheme_name=NODE_TOKEN,
    bearerFormat="JWT",
    description="A node agent's access token from `POST /v1/agent/login`, scoped to one node "
    "(role `node`): it serves the /v1/agent routes of its own node only.",
    auto_error=False,
)
api_key_scheme = HTTPBearer(
    scheme_name=API_KEY,
    bearerFormat="nds_<prefix>_<secret>",
    description="An API key from `POST /v1/api-keys`, sent as `Authorization: Bearer nds_...`. "
    "It acts as its owner's wallet (with the roles the owner holds now), except that it "
    "cannot create API keys.",
    auto_error=False,
)

# Operations whose token is optional (public, with more detail for the owner) list these
# alternatives; `{}` means "no credentials".
OPTIONAL_WALLET_SECURITY: list[dict[str, list[str]]] = [{}, {WALLET_TOKEN: []}, {API_KEY: []}]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(
        pattern=r"^[a-z_]{1,40}$",
        description="Stable, machine-readable (`invalid`, `not_found`, `rate_limited`...).",
    )
    message: str = Field(description="What went wrong and what to do, for people.")
    fields: list[dict[str, Any]] | None = Field(
        default=None, description="`invalid` only: each failing input (`loc`, `message`)."
    )


class ErrorOut(BaseModel):
    """The one error shape: `{"error": {"code", "message"}}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"error": {"code": "not_found", "message": "no such node"}},
        }
    )

    error: ErrorDetail


ERROR_SCHEMA_NAME = "Error"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}

_GENERIC_ERRORS: dict[str, str] = {
    "401": "missing, invalid, expired or revoked credentials (`unauthorized`)",
    "403": "the credentials are valid but not allowed here (`forbidden`)",
    "413": "the body is larger than 64 KiB (`payload_too_large`)",
    "422": "invalid input: the body, a parameter or a value failed its grammar (`invalid`)",
    "503": "transient: a concurrent request conflicted (`retry`), the service is at capacity "
    "(`busy`) or the chain is unreachable (`chain_unavailable`); see Retry-After",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}
# The integer bounds of this API that a double cannot hold, by the double they became.
_WIDE_BOUNDS = {float(bound): bound for bound in (INT64_MAX,)}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, completed (see the module's docstring); cached on the app."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    settings: Settings = app.state.settings
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ErrorOut.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    nested = schemas[ERROR_SCHEMA_NAME].pop("$defs", {})
    schemas.update(nested)
    components["securitySchemes"] = {
        scheme.scheme_name: scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        for scheme in (wallet_token_scheme, node_token_scheme, api_key_scheme)
    }
    _exact_bounds(document)
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                _complete_operation(path, operation, settings)
    # FastAPI's default 422 body (`{"detail": [...]}`) is not what this API answers.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def _exact_bounds(node: object) -> None:
    """FastAPI's OpenAPI model holds bounds as floats, which turns 2**63 - 1 into 2**63 (a
    value the server refuses): integral bounds are written back as exact integers."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                node[key] = _WIDE_BOUNDS.get(value, int(value))
            else:
                _exact_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_bounds(item)


def _complete_operation(path: str, operation: dict[str, Any], settings: Settings) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    security: list[dict[str, list[str]]] = operation.get("security") or []
    required_credentials = bool(security) and {} not in security
    if required_credentials:
        responses.setdefault("401", {"description": _GENERIC_ERRORS["401"]})
        responses.setdefault("403", {"description": _GENERIC_ERRORS["403"]})
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        responses.setdefault("422", {"description": _GENERIC_ERRORS["422"]})
    if "requestBody" in operation:
        responses.setdefault("413", {"description": _GENERIC_ERRORS["413"]})
    if path.startswith("/v1/"):
        responses.setdefault("503", {"description": _GENERIC_ERRORS["503"]})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            _error_response(status, response)
    for parameter in parameters:
        _settings_bounds(parameter, settings)


def _error_response(status: str, response: dict[str, Any]) -> None:
    """Every error answer is the error shape (keeping the route's own example)."""
    content = response.setdefault("content", {})
    media = content.setdefault("application/json", {})
    media["schema"] = dict(_ERROR_REF)
    if status in ("429", "503"):
        response.setdefault("headers", {}).update(_RETRY_AFTER)


def _settings_bounds(parameter: dict[str, Any], settings: Settings) -> None:
    """`limit` and `wait` are bounded by settings, so the document says the configured bound."""
    if parameter.get("in") != "query":
        return
    maximum = {"limit": settings.max_page_size, "wait": settings.long_poll_max_seconds}.get(
        parameter.get("name", "")
    )
    if maximum is None:
        return
    schema = parameter.setdefault("schema", {})
    schema["maximum"] = maximum
    if schema.get("default", 0) > maximum:
        schema["default"] = maximum


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
