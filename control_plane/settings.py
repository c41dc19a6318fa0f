"""Every setting of the control plane, read from `NODUS_*` environment variables (or `.env`).

The README lists each one. Secrets are `SecretStr`, so they never reach logs or reprs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from control_plane.paths import default_artifacts_dir, default_deployments_dir
from control_plane.proxies import parse_trusted_proxies


class ProberSettings(BaseModel):
    """The prober (`NODUS_PROBER_*`): the control plane's own prober job, the intake of
    POST /v1/probes, and `nodus prober run`."""

    # The control plane's own prober job (off: only external probers measure).
    enabled: bool = True
    # The prober's signing key (0x-hex). The control plane's job derives one from its data key
    # when this is unset; `nodus prober run` requires it.
    key: SecretStr | None = None
    name: str = Field(default="control-plane", min_length=1, max_length=64)
    interval_seconds: float = Field(default=60.0, gt=0)
    samples: int = Field(default=3, ge=1, le=10, description="HTTP requests per node per round")
    timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    concurrency: int = Field(default=64, ge=1, le=1024)
    # Probing private, loopback or link-local addresses (a LAN or a test). Off by default: an
    # operator could otherwise point the prober at the control plane's own network.
    allow_private_targets: bool = False
    # POST /v1/probes accepts rounds at most this old (and at most a minute ahead).
    max_sample_age_seconds: int = Field(default=900, ge=60)
    # POST /v1/probes limits (per replica): posts per client IP per minute, and new samples per
    # prober per minute (a prober posts its round in chunks of 100 samples; the default covers
    # a few thousand nodes probed every minute).
    posts_per_minute: int = Field(default=120, ge=1)
    samples_per_minute: int = Field(default=20_000, ge=1)
    # `nodus prober run`: the control plane to fetch targets from and post samples to.
    control_plane_url: str = "http://127.0.0.1:8000"
    # POST /v1/nodes/{id}/probe (`nodus-agent selftest`): one on-demand probe per node per this
    # many seconds (per replica).
    on_demand_interval_seconds: float = Field(default=60.0, gt=0)


class OracleSettings(BaseModel):
    """The oracle key and how its transactions are sent (`NODUS_ORACLE_*`, `NODUS_TX_*`)."""

    oracle_private_key: SecretStr | None = Field(
        default=None, description="hex private key of the oracle (or use a keystore file)"
    )
    oracle_keystore_file: Path | None = Field(
        default=None, description="encrypted JSON keystore of the oracle key"
    )
    oracle_keystore_password: SecretStr | None = None
    oracle_keystore_password_file: Path | None = None
    tx_stuck_seconds: float = Field(
        default=120.0, gt=0, description="pending this long -> replaced with higher fees"
    )
    tx_fee_bump_bps: int = Field(
        default=1_250, ge=1_250, description="fee increase of a replacement, basis points"
    )
    tx_max_fee_gwei: int = Field(
        default=500, ge=1, description="never offer more than this maxFeePerGas (gwei)"
    )
    tx_gas_margin_percent: int = Field(
        default=25, ge=0, le=200, description="added to the gas estimate"
    )
    tx_poll_seconds: float = Field(default=1.0, gt=0, description="receipt polling interval")
    tx_wait_timeout_seconds: float = Field(
        default=600.0, gt=0, description="how long a caller waits for a transaction to be mined"
    )
    tx_send_interval_seconds: float = Field(
        default=5.0, gt=0, description="interval of the sender job"
    )

    @property
    def configured(self) -> bool:
        return self.oracle_private_key is not None or self.oracle_keystore_file is not None


class RewardPostingSettings(BaseModel):
    """Reward epochs (`NODUS_EPOCH_SECONDS`, `NODUS_REWARD_EPOCH_INTERVAL_SECONDS`,
    `NODUS_REWARD_ACCEPT_INTERVAL_SECONDS`)."""

    epoch_seconds: int = Field(default=7 * 24 * 3600, ge=1, description="length of a reward epoch")
    reward_epoch_interval_seconds: float = Field(
        default=60.0, gt=0, description="interval of the job that checks whether an epoch is due"
    )
    reward_accept_interval_seconds: float = Field(
        default=30.0, gt=0, description="interval of the job that accepts due roots"
    )


# Each section of the tree and the prefix of its flat variables: a section's field `f` is read
# from `<prefix>F` (NODUS_PROBER_TIMEOUT_SECONDS, NODUS_TX_POLL_SECONDS, NODUS_EPOCH_SECONDS), the
# names these settings had before they were nested.
SECTIONS: Final[dict[str, tuple[str, type[BaseModel]]]] = {
    "prober": ("NODUS_PROBER_", ProberSettings),
    "oracle": ("NODUS_", OracleSettings),
    "reward_posting": ("NODUS_", RewardPostingSettings),
}


def section_values(model: type[BaseModel], prefix: str, environ: dict[str, str]) -> dict[str, str]:
    """The values of one section found in `environ` (upper-case names)."""
    found = {}
    for name in model.model_fields:
        value = environ.get(f"{prefix}{name}".upper())
        if value is not None:
            found[name] = value
    return found


def read_environment(env_file: Path | str | None = ".env") -> dict[str, str]:
    """The process environment over the `.env` file, names upper-cased."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        for name, value in dotenv_values(env_file).items():
            if value is not None:
                merged[name.upper()] = value
    merged.update({name.upper(): value for name, value in os.environ.items()})
    return merged


class _FlatSectionsSource(PydanticBaseSettingsSource):
    """Fills the nested sections from their flat variable names (environment, then `.env`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        env_file = self.config.get("env_file")
        environ = read_environment(env_file if isinstance(env_file, (str, Path)) else None)
        values: dict[str, Any] = {}
        for section, (prefix, model) in SECTIONS.items():
            found = section_values(model, prefix, environ)
            if found:
                values[section] = found
        return values


class Settings(BaseSettings):
    """The one settings tree: built once at start-up (the app factory, the server command) and
    passed down. The nested sections keep their flat variable names (see SECTIONS)."""

    model_config = SettingsConfigDict(env_prefix="NODUS_", env_file=".env", extra="ignore")

    # Storage and chain
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/nodus"
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = 31337
    # NODUS_DEPLOYMENTS_DIR / NODUS_ARTIFACTS_DIR; unset: found from the working directory
    # (control_plane/paths.py says how), so a checkout and the Docker image both work.
    deployments_dir: Path = Field(default_factory=default_deployments_dir)
    artifacts_dir: Path = Field(default_factory=default_artifacts_dir)
    rpc_timeout_seconds: float = 10.0
    # The database was built from another chain or deployment (a restarted dev chain, another
    # NODUS_CHAIN_ID): refuse to start, or reset (empty the chain data and re-index from the
    # deployment's start block; scripts/dev sets this).
    on_chain_change: Literal["refuse", "reset"] = "refuse"
    # Bounds on every database wait (a stopped or frozen database answers 503
    # database_unavailable within about connect + statement timeout, never hangs a request):
    # opening a connection, taking one from the pool, and one statement (server-side
    # statement_timeout; the client gives up a second later if the server is frozen).
    database_connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    database_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # /readyz answers within this, whatever the database and the chain do.
    readyz_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    confirmations: int = Field(default=0, ge=0, description="blocks before a payment is final")
    indexer_chunk_blocks: int = Field(default=2_000, ge=1)
    expiry_cache_seconds: float = Field(default=5.0, ge=0)
    # How often a replica reads the chain head for its clock (expiries are decided on the
    # chain's time, which a dev chain can move ahead); 0 reads it for every decision.
    chain_clock_seconds: float = Field(default=5.0, ge=0)

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
    # The server process runs a full garbage collection this often instead of when CPython's
    # heuristic says (control_plane/gc_policy.py says why); 0 leaves CPython's policy.
    gc_full_collection_seconds: float = Field(default=300.0, ge=0)
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
    # On SIGTERM parked long-polls are released at once (503 shutting_down); other in-flight
    # requests get up to this long to finish before the server closes their connections.
    shutdown_grace_seconds: int = Field(default=10, ge=1, le=300)
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

    # Sections (flat variable names, see SECTIONS)
    prober: ProberSettings = ProberSettings()
    oracle: OracleSettings = OracleSettings()
    reward_posting: RewardPostingSettings = RewardPostingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _FlatSectionsSource(settings_cls),
            file_secret_settings,
        )

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
