"""Transient database conflicts become a retryable 503, never a 500 with a traceback."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from control_plane.error_handlers import install_error_handlers


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


def app_raising(sqlstate: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise DBAPIError("UPDATE nodes ...", {}, DriverError(sqlstate))

    return app


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
async def test_deadlock_and_serialization_failure_ask_the_client_to_retry(sqlstate: str) -> None:
    transport = httpx.ASGITransport(app=app_raising(sqlstate), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "retry"


async def test_other_database_errors_stay_internal_without_detail() -> None:
    transport = httpx.ASGITransport(app=app_raising("23505"), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert "UPDATE" not in response.text


async def test_data_exceptions_are_invalid_input_not_internal_errors() -> None:
    transport = httpx.ASGITransport(app=app_raising("22021"), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
