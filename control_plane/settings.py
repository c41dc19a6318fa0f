"""Every setting of the control plane, read from `NODUS_*` environment variables (or `.env`).

The README lists each one. Secrets are `SecretStr`, so they never reach logs or reprs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from control_plane.paths import DEFAULT_ARTIFACTS_DIR, DEFAULT_DEPLOYMENTS_DIR
from control_plane.proxies import parse_trusted_proxies


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NODUS_", env_file=".env", extra="ignore")

    # Storage and chain
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/nodus"
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = 31337
    deployments_dir: Path = DEFAULT_DEPLOYMENTS_DIR
    artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR
    rpc_timeout_seconds: float = 10.0
    confirmations: int = Field(default=0, ge=0, description="blocks before a payment is final")
    indexer_chunk_blocks: int = Field(default=2_000, ge=1)
    expiry_cache_seconds: float = Field(default=5.0, ge=0)

    # Sign-in (EIP-4361) and tokens
    public_url: str = "http://127.0.0.1:8000"
    siwe_statement: str = "Sign in to Nodus."
    nonce_ttl_seconds: int = 300
    jwt_secret: SecretStr = Field(min_length=32)
    jwt_issuer: str = "nodus"
    jwt_audience: str = "nodus-api"
    access_token_ttl_seconds: int = 900
    # How long a node token found backed by the chain (agent key, Active) is trusted before the
    # indexer's mirror is read again (per replica).
    node_token_recheck_seconds: float = Field(default=5.0, ge=0)
    api_key_secret: SecretStr = Field(min_length=32)
    admin_addresses: list[str] = []
    # Encrypts key material the control plane must keep (OpenVPN CA keys) at rest.
    data_key: SecretStr = Field(min_length=32)

    # Node endpoints on loopback, private, link-local or reserved addresses (also wrapped in
    # IPv6: NAT64, 6to4, ...): refused with 422 endpoint_not_public unless this is on (a LAN,
    # scripts/dev, tests), so an operator cannot aim the probers at the control plane's network.
    allow_private_endpoints: bool = False

    # Product limits
    device_limit: int = Field(default=5, ge=1)
    max_page_size: int = 100
    long_poll_max_seconds: int = 60
    # Configs one wallet may issue or revoke per minute (per replica): each change wakes a node.
    config_changes_per_minute: int = Field(default=10, ge=1)

    # Peers whose X-Forwarded-For is believed (IPs or CIDRs, e.g. the nginx container). Empty:
    # the connection's peer is the client, and X-Forwarded-For is ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = []

    # Jobs
    run_jobs: bool = True
    chain_sync_interval_seconds: float = 2.0
    expiry_interval_seconds: float = 15.0

    log_level: str = "INFO"

    @field_validator("admin_addresses")
    @classmethod
    def _lower_addresses(cls, value: list[str]) -> list[str]:
        return [a.lower() for a in value]

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        # The environment gives one string: comma-separated, or a JSON list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                parsed: object = json.loads(text)
                return parsed
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        return [str(network) for network in parse_trusted_proxies(value)]

    @property
    def siwe_domain(self) -> str:
        """The EIP-4361 domain: the authority (host[:port]) of the public URL."""
        return self.public_url.split("://", 1)[-1].split("/", 1)[0]
