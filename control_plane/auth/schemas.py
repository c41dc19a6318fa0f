"""What sign-in, node-agent login and API-key routes take and answer. Inputs are bounded and
strictly shaped (a malformed body is a 422 before any check runs); outputs carry OpenAPI
examples."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from control_plane.auth.principal import Role
from control_plane.patterns import ADDRESS
from control_plane.patterns import NODE_ID as NODE_ID_PATTERN
from control_plane.patterns import SIGNATURE as SIGNATURE_PATTERN

# A wallet address or, for node agents, a node id.
_SUBJECT_PATTERN = r"^0x([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"
_API_KEY_PREFIX_PATTERN = r"^[a-z0-9]{8}$"

# A SIWE message is a few hundred characters; the bound keeps parsing cheap on hostile input.
MAX_SIWE_MESSAGE_CHARS = 2048

_EXAMPLE_ADDRESS = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
_EXAMPLE_NODE_ID = "0x" + "ab" * 32
_EXAMPLE_JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIweGYzOWZkNmU1...In0.3q2-7w..."
_EXAMPLE_SIWE_MESSAGE = (
    "127.0.0.1:8000 wants you to sign in with your Ethereum account:\n"
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n\n"
    "Sign in to Nodus.\n\n"
    "URI: http://127.0.0.1:8000\n"
    "Version: 1\n"
    "Chain ID: 31337\n"
    "Nonce: 6f1c0e8a9b2d4c7e8f0a1b2c3d4e5f60\n"
    "Issued At: 2025-01-01T12:00:00.000Z"
)

# 65-byte EOA signatures (r, s, v) as 0x-hex: what personal_sign returns. Contract-wallet
# (EIP-1271) signatures have other shapes and are not accepted.
Signature = Annotated[
    str,
    Field(
        pattern=SIGNATURE_PATTERN,
        description="An EIP-191 personal_sign signature: 0x and 65 bytes (r, s, v) in hex.",
        examples=["0x" + "1b" * 65],
    ),
]


def _lower(value: str) -> str:
    return value.lower()


NodeId = Annotated[
    str,
    Field(
        pattern=NODE_ID_PATTERN,
        description="The node's on-chain id (bytes32) as 0x and 64 hex digits.",
        examples=[_EXAMPLE_NODE_ID],
    ),
    AfterValidator(_lower),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- wallets: Sign-In with Ethereum ------------------------------------------------------------


class NonceOut(BaseModel):
    """Everything a wallet needs to build the EIP-4361 message it signs."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "nonce": "6f1c0e8a9b2d4c7e8f0a1b2c3d4e5f60",
                    "domain": "127.0.0.1:8000",
                    "uri": "http://127.0.0.1:8000",
                    "chain_id": 31337,
                    "statement": "Sign in to Nodus.",
                    "expires_at": "2025-01-01T12:05:00Z",
                }
            ]
        }
    )

    nonce: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="Single use; put it in the message's `Nonce:` line."
    )
    domain: str = Field(description="The message's domain (the API's host[:port]).")
    uri: str = Field(description="The message's `URI:` line.")
    chain_id: int = Field(description="The message's `Chain ID:` line.")
    statement: str = Field(description="A suggested statement (free text, optional).")
    expires_at: datetime = Field(description="Sign in before this (UTC); then ask again.")


class LoginIn(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"message": _EXAMPLE_SIWE_MESSAGE, "signature": "0x" + "1b" * 65}]
        },
    )

    message: str = Field(
        min_length=1,
        max_length=MAX_SIWE_MESSAGE_CHARS,
        description="The exact EIP-4361 message the wallet signed.",
    )
    signature: Signature


class LoginOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": _EXAMPLE_JWT,
                    "token_type": "bearer",
                    "expires_in": 900,
                    "address": _EXAMPLE_ADDRESS,
                    "roles": ["operator", "subscriber"],
                }
            ]
        }
    )

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")
    address: str = Field(pattern=ADDRESS, description="The signed-in wallet, lower-case.")
    roles: list[Role]


class MeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"subject": _EXAMPLE_ADDRESS, "roles": ["subscriber"], "node_id": None},
                {"subject": _EXAMPLE_NODE_ID, "roles": ["node"], "node_id": _EXAMPLE_NODE_ID},
            ]
        }
    )

    subject: str = Field(
        pattern=_SUBJECT_PATTERN,
        description="A lower-case wallet address, or a node id for agents.",
    )
    roles: list[Role]
    node_id: str | None = Field(
        pattern=NODE_ID_PATTERN, description="Set only for node-agent tokens."
    )


# --- node agents ------------------------------------------------------------------------------


class AgentChallengeIn(_Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"node_id": _EXAMPLE_NODE_ID}]}
    )

    node_id: NodeId


class AgentChallengeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "node_id": _EXAMPLE_NODE_ID,
                    "challenge": "127.0.0.1:8000 asks the Nodus agent of node "
                    f"{_EXAMPLE_NODE_ID} to sign in.\nChallenge: 9c4e...b1",
                    "expires_at": "2025-01-01T12:05:00Z",
                }
            ]
        }
    )

    node_id: str = Field(pattern=NODE_ID_PATTERN)
    challenge: str = Field(
        description="Sign this exact text with the node's on-chain agent key (EIP-191 "
        "personal_sign). Asking again while it is fresh returns the same text."
    )
    expires_at: datetime = Field(description="Log in before this (UTC).")


class AgentLoginIn(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"node_id": _EXAMPLE_NODE_ID, "signature": "0x" + "1c" * 65}]
        },
    )

    node_id: NodeId
    signature: Signature


class AgentLoginOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": _EXAMPLE_JWT,
                    "token_type": "bearer",
                    "expires_in": 900,
                    "node_id": _EXAMPLE_NODE_ID,
                }
            ]
        }
    )

    access_token: str = Field(description="A token scoped to this node only.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")
    node_id: str = Field(pattern=NODE_ID_PATTERN)


# --- API keys ---------------------------------------------------------------------------------


def _strip(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise ValueError("must not contain control characters")
    return stripped


class ApiKeyCreateIn(_Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "ci"}]})

    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_strip)] = Field(
        description="A label for you (for example where the key is used)."
    )


class ApiKeyOut(BaseModel):
    """A key as listed: never its secret (the server does not have it)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b4f5f0e-8d2a-4c6b-9a51-2f1d7f3c9e10",
                    "name": "ci",
                    "prefix": "k3x9q2ma",
                    "created_at": "2025-01-01T12:00:00Z",
                    "last_used_at": None,
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    prefix: str = Field(
        pattern=_API_KEY_PREFIX_PATTERN, description="The key's public part: `nds_<prefix>_...`."
    )
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="Approximate (updated at most once a minute)."
    )


class ApiKeyCreatedOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b4f5f0e-8d2a-4c6b-9a51-2f1d7f3c9e10",
                    "name": "ci",
                    "prefix": "k3x9q2ma",
                    "key": "nds_k3x9q2ma_" + "A" * 43,
                    "created_at": "2025-01-01T12:00:00Z",
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    prefix: str = Field(pattern=_API_KEY_PREFIX_PATTERN)
    key: str = Field(
        pattern=r"^nds_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$",
        description="The key, shown this once: store it now. Send it as "
        "`Authorization: Bearer nds_...`.",
    )
    created_at: datetime


class ApiKeyList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "0b4f5f0e-8d2a-4c6b-9a51-2f1d7f3c9e10",
                            "name": "ci",
                            "prefix": "k3x9q2ma",
                            "created_at": "2025-01-01T12:00:00Z",
                            "last_used_at": None,
                        }
                    ]
                }
            ]
        }
    )

    items: list[ApiKeyOut] = Field(description="Your live keys, newest first (a bounded list).")


class WhoAmIOut(BaseModel):
    """The client address this server sees (through a trusted proxy, the address that proxy
    saw: NODUS_TRUSTED_PROXIES)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"address": "203.0.113.7"}]})

    address: str | None = Field(
        pattern=r"^[0-9A-Fa-f:.]{2,45}$",
        description="an IPv4 or IPv6 address; null when the connection has none (a Unix "
        "socket with no trusted proxy in front)",
    )
