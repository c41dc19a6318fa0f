"""The OpenAPI document is the contract: every identifier has its grammar, every integer its
bounds, every error the error shape, every protected operation its credentials. Where the
document makes a promise about behaviour, a real request checks that the server keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.agent.conftest import World
from tests.control_plane.api_contract.conftest import ADMIN, concrete_path, operations
from tests.support.builders import (
    NDS,
    fresh_wallet,
    node_body,
    post_node,
    register_on_chain,
    wallet_headers,
)

# Properties and parameters that hold identifiers, keys, networks, hashes, amounts or cursors.
# `endpoint` and `country` have a grammar of their own (nodes/schemas.py) and are not listed.
STRUCTURED = {
    "node_id",
    "id",
    "operator",
    "address",
    "prober",
    "subject",
    "public_key",
    "wireguard_public_key",
    "cert_serial",
    "ipv4_pool",
    "ipv6_pool",
    "signature",
    "root",
    "data_hash",
    "tx_hash",
    "proposed_tx_hash",
    "settled_tx_hash",
    "amount",
    "cumulative",
    "claimed",
    "claimable",
    "budget",
    "allocated",
    "total_cumulative",
    "price_per_period",
    "prefix",
    "key",
    "nonce",
    "cursor",
    "next_cursor",
    "unknown_nodes",
    "allowed_ips",
    "server_addresses",
    "proof",
}
SCHEMES = {"walletToken", "nodeToken", "apiKey"}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _alternatives(document: dict[str, Any], schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The non-null alternatives of a schema (anyOf / oneOf), refs resolved."""
    schema = _resolve(document, schema)
    nested = schema.get("anyOf") or schema.get("oneOf")
    if nested:
        for alternative in nested:
            yield from _alternatives(document, alternative)
    elif schema.get("type") != "null":
        yield schema


def _leaves(
    document: dict[str, Any], name: str, schema: dict[str, Any], seen: set[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(property name, leaf schema) of every scalar below `schema`; array items keep the
    array's name."""
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return
        seen = seen | {ref}
    for alternative in _alternatives(document, schema):
        if alternative.get("type") == "array" and "items" in alternative:
            yield from _leaves(document, name, alternative["items"], seen)
        elif "properties" in alternative:
            for child, child_schema in alternative["properties"].items():
                yield from _leaves(document, child, child_schema, seen)
        else:
            yield name, alternative


def _inputs(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(operation, name, leaf schema) of every parameter and request-body value."""
    for method, path, operation in operations(document):
        label = f"{method.upper()} {path}"
        for parameter in operation.get("parameters", []):
            for name, leaf in _leaves(document, parameter["name"], parameter["schema"], set()):
                yield label, name, leaf
        for media in operation.get("requestBody", {}).get("content", {}).values():
            for name, leaf in _leaves(document, "body", media["schema"], set()):
                yield label, name, leaf


def _outputs(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                if "schema" in media:
                    label = f"{method.upper()} {path} -> {status}"
                    for name, leaf in _leaves(document, "response", media["schema"], set()):
                        yield label, name, leaf


def test_every_identifier_key_network_and_amount_has_a_grammar(app: FastAPI) -> None:
    document = app.openapi()
    missing = [
        f"{label}: {name}"
        for label, name, leaf in [*_inputs(document), *_outputs(document)]
        if name in STRUCTURED
        and leaf.get("type") == "string"
        and "pattern" not in leaf
        and leaf.get("format") != "uuid"
    ]
    assert missing == []


def test_every_path_parameter_has_a_grammar(app: FastAPI) -> None:
    document = app.openapi()
    loose = [
        f"{method.upper()} {path}: {parameter['name']}"
        for method, path, operation in operations(document)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
        and "pattern" not in parameter["schema"]
        and parameter["schema"].get("format") != "uuid"
        and not {"minimum", "maximum"} <= parameter["schema"].keys()
    ]
    assert loose == []


def test_every_input_integer_has_the_bounds_the_server_accepts(app: FastAPI) -> None:
    document = app.openapi()
    unbounded = [
        f"{label}: {name}"
        for label, name, leaf in _inputs(document)
        if leaf.get("type") == "integer" and not {"minimum", "maximum"} <= leaf.keys()
    ]
    assert unbounded == []
    too_wide = [
        f"{label}: {name}"
        for label, name, leaf in _inputs(document)
        if leaf.get("type") == "integer" and leaf["maximum"] > 2**63 - 1
    ]
    assert too_wide == []  # PostgreSQL's BIGINT is the widest column


def test_limit_and_wait_are_bounded_by_the_settings(app: FastAPI, settings: Settings) -> None:
    document = app.openapi()
    bounds = {"limit": settings.max_page_size, "wait": settings.long_poll_max_seconds}
    found = {
        (parameter["name"], parameter["schema"].get("maximum"))
        for _, _, operation in operations(document)
        for parameter in operation.get("parameters", [])
        if parameter["name"] in bounds
    }
    assert found == set(bounds.items())


def test_every_error_answer_has_the_error_shape(app: FastAPI) -> None:
    document = app.openapi()
    wrong = [
        f"{method.upper()} {path} -> {status}"
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        if int(status) >= 400
        and response.get("content", {}).get("application/json", {}).get("schema")
        != {"$ref": "#/components/schemas/Error"}
    ]
    assert wrong == []
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_invalid_input_and_credential_failures_are_documented(app: FastAPI) -> None:
    document = app.openapi()
    for method, path, operation in operations(document):
        statuses = set(operation["responses"])
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in statuses, f"{method} {path}"
        security = operation.get("security", [])
        if security and {} not in security:
            assert {"401", "403"} <= statuses, f"{method} {path}"


def test_patch_offers_null_only_where_null_means_something(app: FastAPI) -> None:
    document = app.openapi()
    patch = document["components"]["schemas"]["NodePatch"]
    nullable = {
        name
        for name, schema in patch["properties"].items()
        if any(s.get("type") == "null" for s in schema.get("anyOf", []))
    }
    assert nullable == {"wireguard_public_key", "openvpn_port"}
    assert "null" in patch["description"]


def test_security_schemes_are_declared_and_used(app: FastAPI) -> None:
    document = app.openapi()
    declared = document["components"]["securitySchemes"]
    assert set(declared) == SCHEMES
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in declared.values())
    used = {
        name
        for _, _, operation in operations(document)
        for requirement in operation.get("security", [])
        for name in requirement
    }
    assert used == SCHEMES


# --- the promises, kept by the server --------------------------------------------------------


async def test_a_wrong_method_lists_every_method_of_the_path(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    document = app.openapi()
    multi_method_paths = 0
    for path, item in document["paths"].items():
        operation = next(iter(item.values()))
        documented = {method.upper() for method in item}
        multi_method_paths += len(documented) > 1
        response = await client.request("TRACE", concrete_path(path, operation))
        assert response.status_code == 405, path
        assert response.json()["error"]["code"] == "method_not_allowed"
        allowed = set(response.headers["allow"].split(", "))
        assert allowed - {"HEAD"} == documented, path
    assert multi_method_paths >= 4


async def test_a_body_that_is_not_utf8_is_invalid_input(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    document = app.openapi()
    with_body = [
        (method, path, operation)
        for method, path, operation in operations(document)
        if "requestBody" in operation
    ]
    assert len(with_body) >= 8
    for method, path, operation in with_body:
        response = await client.request(
            method,
            concrete_path(path, operation),
            content=b'{"name": "\xff\xfe"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, f"{method} {path}: {response.text}"
        assert response.json()["error"] == {
            "code": "invalid",
            "message": "body: not JSON text in UTF-8",
            "fields": [{"loc": ["body"], "message": "body: not JSON text in UTF-8"}],
        }


async def test_each_operation_accepts_exactly_the_credentials_it_lists(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Without credentials a protected operation is a 401; with a credential of a kind it does
    not list, a 403; with one it lists, neither (the admin wallet holds every wallet role)."""
    admin = ADMIN.address.lower()
    wallet = {
        "authorization": "Bearer "
        + issue_access_token(
            settings, Principal(subject=admin, roles=frozenset({Role.SUBSCRIBER, Role.ADMIN}))
        )
    }
    node_id = "0x" + "5a" * 32
    node = {
        "authorization": "Bearer "
        + issue_access_token(
            settings, Principal(subject=node_id, roles=frozenset({Role.NODE}), node_id=node_id)
        )
    }
    created = await client.post("/v1/api-keys", json={"name": "contract"}, headers=wallet)
    assert created.status_code == 201, created.text
    api_key = {"authorization": f"Bearer {created.json()['key']}"}
    credentials = {"walletToken": wallet, "nodeToken": node, "apiKey": api_key}

    document = app.openapi()
    checked = 0
    for method, path, operation in operations(document):
        url = concrete_path(path, operation)
        body: dict[str, Any] | None = {} if "requestBody" in operation else None
        security = operation.get("security", [])
        required = bool(security) and {} not in security
        listed = {name for requirement in security for name in requirement}

        anonymous = await client.request(method, url, json=body)
        label = f"{method.upper()} {path}"
        assert (anonymous.status_code == 401) == required, f"{label}: {anonymous.text}"
        if anonymous.status_code == 401:
            assert anonymous.headers["www-authenticate"] == "Bearer"
        for name, headers in credentials.items():
            response = await client.request(method, url, headers=headers, json=body)
            assert response.status_code != 401, f"{label} with {name}: {response.text}"
            refused = response.status_code == 403
            assert refused == (required and name not in listed), (
                f"{label} with {name}: {response.status_code} {response.text}"
            )
            checked += 1
    assert checked >= 90


async def test_the_documented_64_bit_maximum_is_accepted(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The largest counter, revision and epoch the document allows get real answers, not a
    422 from the database."""
    document = app.openapi()
    heartbeat = document["components"]["schemas"]["HeartbeatIn"]["properties"]
    counter_max = heartbeat["rx_bytes_total"]["maximum"]
    assert isinstance(counter_max, int)
    assert 2**62 < counter_max <= 2**63 - 1
    node_id = await World(app.state.sessions).node()
    node = {
        "authorization": "Bearer "
        + issue_access_token(
            settings, Principal(subject=node_id, roles=frozenset({Role.NODE}), node_id=node_id)
        )
    }
    report = {
        "agent_version": "0.1.0",
        "applied_revision": heartbeat["applied_revision"]["maximum"],
        "active_peers": heartbeat["active_peers"]["maximum"],
        "rx_bytes_total": counter_max,
        "tx_bytes_total": heartbeat["tx_bytes_total"]["maximum"],
    }
    response = await client.post("/v1/agent/heartbeat", json=report, headers=node)
    assert response.status_code == 200, response.text
    over = {**report, "rx_bytes_total": counter_max + 1}
    response = await client.post("/v1/agent/heartbeat", json=over, headers=node)
    assert response.status_code == 422

    peers = document["paths"]["/v1/agent/peers"]["get"]["parameters"]
    since = next(p for p in peers if p["name"] == "since")["schema"]
    since_max = next(_alternatives(document, since))["maximum"]
    response = await client.get("/v1/agent/peers", params={"since": since_max}, headers=node)
    assert response.status_code == 200, response.text

    for path in ("/v1/epochs/{epoch}", "/v1/epochs/{epoch}/data"):
        parameter = document["paths"][path]["get"]["parameters"][0]
        epoch_max = parameter["schema"]["maximum"]
        response = await client.get(path.format(epoch=epoch_max))
        assert response.status_code == 404, response.text
        response = await client.get(path.format(epoch=epoch_max + 1))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid"


async def test_patch_nulls_do_what_the_document_says(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    node_id = await register_on_chain(w3, deployment, operator)
    body = node_body(node_id, openvpn_port=1195)
    registered = await post_node(client, settings, operator, body)
    assert registered.status_code == 201, registered.text
    headers = wallet_headers(settings, operator.address)
    url = f"/v1/nodes/{node_id}"

    # openvpn_port: null goes back to the default port.
    response = await client.patch(url, json={"openvpn_port": None}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["openvpn_port"] == 1194

    # wireguard_public_key: null removes the key, once WireGuard is no longer served.
    response = await client.patch(
        url, json={"protocols": ["openvpn"], "wireguard_public_key": None}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["wireguard_public_key"] is None

    # The fields the document does not offer null for refuse it, and say which.
    for name in ("endpoint", "country", "protocols"):
        response = await client.patch(url, json={name: None}, headers=headers)
        assert response.status_code == 422, response.text
        assert name in response.json()["error"]["message"]
