"""The prober's settings, read from `NODUS_PROBER_*` environment variables (or `.env`).

Both the control plane's own prober job and `nodus prober run` read them."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProberSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NODUS_PROBER_", env_file=".env", extra="ignore")

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
