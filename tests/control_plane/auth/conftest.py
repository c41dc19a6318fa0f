"""Wallets that sign real SIWE messages, node ids, and rows the indexer would write (inserted
directly: the indexer is another domain's)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from siwe import SiweMessage
from sqlalchemy.dialects.postgresql import insert

from control_plane.db import unit_of_work
from control_plane.indexer.models import ChainNode
from control_plane.settings import Settings
from tests.support.devchain import dev_account

# A configured admin (a dev account, so it is a real key this test run can sign with).
ADMIN = dev_account(9)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_addresses": [ADMIN.address.lower()]})


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def personal_sign(account: LocalAccount, text: str) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


def new_node_id() -> str:
    return "0x" + secrets.token_hex(32)


async def get_nonce(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/auth/nonce")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def siwe_message(account: LocalAccount, nonce: dict[str, Any], **fields: Any) -> str:
    """The EIP-4361 message a wallet builds from GET /v1/auth/nonce (`fields` override it)."""
    values: dict[str, Any] = {
        "domain": nonce["domain"],
        "address": account.address,
        "statement": nonce["statement"],
        "uri": nonce["uri"],
        "version": "1",
        "chain_id": nonce["chain_id"],
        "nonce": nonce["nonce"],
        "issued_at": iso(datetime.now(UTC)),
    }
    values.update(fields)
    message: str = SiweMessage(**values).prepare_message()
    return message


async def login(client: httpx.AsyncClient, account: LocalAccount, **fields: Any) -> httpx.Response:
    message = siwe_message(account, await get_nonce(client), **fields)
    return await client.post(
        "/v1/auth/login", json={"message": message, "signature": personal_sign(account, message)}
    )


async def bearer(client: httpx.AsyncClient, account: LocalAccount) -> dict[str, str]:
    response = await login(client, account)
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['access_token']}"}


async def add_chain_node(app: FastAPI, operator: str, *, active: bool) -> str:
    """A NodeRegistry mirror row as the indexer writes it (addresses lower-case)."""
    node_id = new_node_id()
    async with unit_of_work(app.state.sessions) as session:
        await session.execute(
            insert(ChainNode).values(
                node_id=node_id,
                operator=operator.lower(),
                agent=Account.create().address.lower(),
                stake=100 * 10**18,
                status="active" if active else "exiting",
                active=active,
                updated_block=1,
            )
        )
    return node_id
