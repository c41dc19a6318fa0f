"""Requests generated from the OpenAPI document (Schemathesis), sent in-process to the real app
(real PostgreSQL, real anvil with the real contracts): no answer is a server error, and every
answer is documented (its status code, content type, headers and body schema).

Protected operations are called as every role that holds a credential they list: a paying
subscriber signed in with SIWE (and with an API key), the operator who registered a node here
(its owner's wallet), an admin, and that node's agent token. Public operations are called without
credentials. The run is bounded (EXAMPLES cases per operation, role and mode: valid and invalid
input; over 1,000 in all) and deterministic (derandomized Hypothesis)."""

from __future__ import annotations

from typing import Any, cast

import hypothesis
import pytest
import requests
import schemathesis
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, Phase, given
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import ASGIApp, get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from control_plane.app import create_app
from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.settings import Settings
from tests.control_plane.api_contract.conftest import ADMIN
from tests.control_plane.auth.conftest import personal_sign, siwe_message
from tests.support.builders import (
    NDS,
    fresh_wallet,
    node_body,
    paying_subscriber,
    register_on_chain,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 6}
MINIMUM_CASES = 1_000


@pytest.fixture
async def subscriber(w3: Web3Client, deployment: Deployment) -> LocalAccount:
    return await paying_subscriber(w3, deployment)


@pytest.fixture
async def operator_and_node(w3: Web3Client, deployment: Deployment) -> tuple[LocalAccount, str]:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    return operator, await register_on_chain(w3, deployment, operator)


def _sign_in(client: requests.Session, account: LocalAccount) -> dict[str, str]:
    """SIWE, as a wallet does it: nonce, EIP-4361 message, personal_sign, login."""
    nonce = client.get("/v1/auth/nonce")
    assert nonce.status_code == 200, nonce.text
    message = siwe_message(account, nonce.json())
    login = client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(account, message)}
    )
    assert login.status_code == 200, login.text
    return {"authorization": f"Bearer {login.json()['access_token']}"}


def _callers(
    operation: Any, by_scheme: dict[str, dict[str, dict[str, str]]]
) -> dict[str, dict[str, str]]:
    """Role -> headers for every role holding a credential the operation lists ({"public": {}}
    for public operations)."""
    listed = [name for r in operation.definition.raw.get("security", []) for name in r]
    callers: dict[str, dict[str, str]] = {}
    for scheme in listed or ["public"]:
        callers.update(by_scheme[scheme])
    return callers


def _run(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    node_id: str,
    failures: list[str],
) -> int:
    """Sends EXAMPLES[mode] generated requests to `operation`; the number sent. Valid input
    names the node registered here, so its owner's and its agent's routes go past the lookup."""
    fixed_query = {"wait": 0} if operation.path == "/v1/agent/peers" else None
    fixed_path = (
        {"node_id": node_id}
        if mode is GenerationMode.POSITIVE and "{node_id}" in operation.path
        else None
    )
    sent = 0

    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(
            generation_mode=mode, query=fixed_query, path_parameters=fixed_path
        )
    )
    def send(case: Case[Any]) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as failure:  # a check's failure: collected, all reported at the end
            failures.append(f"{operation.label} ({mode}): {failure}")

    try:
        send()
    except hypothesis.errors.Unsatisfiable:
        # Nothing of this operation can be made invalid (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE, operation.label
    return sent


def test_generated_requests_get_documented_answers(
    settings: Settings,
    deployment: Deployment,
    subscriber: LocalAccount,
    operator_and_node: tuple[LocalAccount, str],
) -> None:
    app = create_app(settings)  # its own chain reader, in Schemathesis' event loop
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        client = get_client(cast(ASGIApp, app))
        operator, node_id = operator_and_node
        registered = client.post(
            "/v1/nodes", json=node_body(node_id), headers=_sign_in(client, operator)
        )
        assert registered.status_code == 201, registered.text
        wallet = _sign_in(client, subscriber)
        node_principal = Principal(subject=node_id, roles=frozenset({Role.NODE}), node_id=node_id)
        node = {"authorization": f"Bearer {issue_access_token(settings, node_principal)}"}
        created = client.post("/v1/api-keys", json={"name": "schemathesis"}, headers=wallet)
        assert created.status_code == 201, created.text
        api_key = {"authorization": f"Bearer {created.json()['key']}"}
        admin = _sign_in(client, ADMIN)
        by_scheme: dict[str, dict[str, dict[str, str]]] = {
            "public": {"public": {}},
            "walletToken": {
                "subscriber": wallet,
                "operator": _sign_in(client, operator),
                "admin": admin,
            },
            "apiKey": {"subscriber-api-key": api_key},
            "nodeToken": {"node": node},
        }

        failures: list[str] = []
        sent: dict[str, int] = {}
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the document loads as OpenAPI
            operation = result.ok()
            # The probers' allow-list is the admins'.
            callers = (
                {"admin": admin}
                if operation.path.startswith("/v1/probers/")
                else _callers(operation, by_scheme)
            )
            for role, headers in callers.items():
                for mode in EXAMPLES:
                    sent[role] = sent.get(role, 0) + _run(
                        operation, mode, headers, node_id, failures
                    )
        print(f"generated cases per role: {sent}, {sum(sent.values())} in all")
        assert failures == []
        assert set(sent) == {
            "public",
            "subscriber",
            "subscriber-api-key",
            "operator",
            "admin",
            "node",
        }
        assert sum(sent.values()) >= MINIMUM_CASES
    finally:
        shutdown_lifespans()
