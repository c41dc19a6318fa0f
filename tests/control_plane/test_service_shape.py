"""The service's outer shape: health, readiness, metrics, request ids, and one error format."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


async def test_health_and_readiness_report_database_and_chain(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": True, "chain": True}}


async def test_unknown_route_uses_the_error_shape_and_echoes_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/nope", headers={"x-request-id": "abc-123"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["x-request-id"] == "abc-123"


async def test_oversized_body_is_rejected_before_reading(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/login", content=b"x" * (65 * 1024))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/v1/nodes/0x" + "ab" * 32)
    body = (await client.get("/metrics")).text
    assert 'nodus_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    # The template a request matched, whole: what the client asked for, with /v1, without the id.
    assert (
        'nodus_http_requests_total{method="GET",route="/v1/nodes/{node_id}",status="404"}' in body
    )


async def test_oversized_chunked_body_without_length_is_rejected(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b"x" * 1024

    response = await client.post("/v1/auth/login", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
