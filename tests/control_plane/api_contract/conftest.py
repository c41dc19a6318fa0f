"""Fixtures for the API-contract tests: an admin wallet (so every wallet-role route is reachable
with a wallet's credentials) and helpers that fill an operation's path from its schema."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from control_plane import patterns
from control_plane.settings import Settings
from tests.support.devchain import dev_account

# A configured admin (a dev account: a real key the tests can sign with).
ADMIN = dev_account(8)

# A value for each grammar a path parameter can have.
_PATH_VALUES: dict[str, str] = {
    patterns.NODE_ID: "0x" + "6e" * 32,
    patterns.ADDRESS: "0x" + "c4" * 20,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_addresses": [ADMIN.address.lower()]})


def path_value(parameter: dict[str, Any]) -> str:
    """A value that satisfies a path parameter's schema (its pattern, format or bounds)."""
    schema = parameter["schema"]
    if schema.get("pattern") in _PATH_VALUES:
        return _PATH_VALUES[schema["pattern"]]
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("type") == "integer":
        return str(schema["minimum"])
    raise AssertionError(f"no test value for path parameter {parameter['name']}: {schema}")


def concrete_path(path: str, operation: dict[str, Any]) -> str:
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", path_value(parameter))
    return path


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation of the document."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    ]
