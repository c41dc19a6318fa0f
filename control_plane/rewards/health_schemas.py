"""What the node health routes return: the probers' view of a node, round by round, and one
probe run on demand, each verdict with a reason code and a line on how to fix it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.patterns import ADDRESS, NODE_ID

ReasonCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9_]{1,32}$",
        description="`ok`; a probe failure (`connect_timeout`, `refused`, `timeout`, "
        "`protocol_error`, `http_error`, `too_large`, `unsigned`, `wrong_node`, "
        "`stale_nonce`, `bad_signature`, `dns`, `private_address`, `invalid_target`, "
        "`no_answer`); or why the node is not probed (`not_active_on_chain`, `not_indexed`, "
        "`deleted`, `never_probed`, `no_recent_rounds`). External probers may report codes "
        "of their own.",
        examples=["connect_timeout"],
    ),
]
Fix = Annotated[str, Field(description="what to do about it, in one line")]

_NODE = "0x6e6f6465000000000000000000000000000000000000000000000000000000a1"
_ROUND: dict[str, Any] = {
    "prober": "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
    "round": 1767225600,
    "round_at": "2026-01-01T00:00:00Z",
    "verdict": "down",
    "reason": "connect_timeout",
    "fix": "no TCP connection in time to the agent's health endpoint ...",
    "attempts": 3,
    "answered": 0,
    "latency_ms": None,
}


class HealthRoundOut(BaseModel):
    """One prober's probe of the node in one of its rounds (a signed sample; its signature is
    at GET /v1/probes)."""

    prober: str = Field(pattern=ADDRESS)
    round: int = Field(description="the round's start, unix seconds")
    round_at: datetime
    verdict: Literal["up", "down"] = Field(description="up: at least one attempt answered")
    reason: ReasonCode
    fix: Fix
    attempts: int = Field(ge=1, le=10)
    answered: int = Field(ge=0, le=10)
    latency_ms: float | None = Field(description="median round trip of the answered attempts")


class HealthSummaryOut(BaseModel):
    verdict: Literal["up", "down", "unknown"] = Field(
        description="up: at least half of the probers' latest rounds answered; down: fewer, "
        "or the node cannot be probed (`not_active_on_chain`, `deleted`); unknown: no recent "
        "round to judge by"
    )
    reason: ReasonCode
    fix: Fix
    as_of: datetime | None = Field(description="the newest round judged; null: none")
    probers: int = Field(ge=0, description="probers whose latest recent round was judged")
    up: int = Field(ge=0, description="how many of them the node answered")


class NodeHealthOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "node_id": _NODE,
                "summary": {
                    "verdict": "down",
                    "reason": "connect_timeout",
                    "fix": _ROUND["fix"],
                    "as_of": "2026-01-01T00:00:00Z",
                    "probers": 1,
                    "up": 0,
                },
                "rounds": [_ROUND],
            }
        }
    )

    node_id: str = Field(pattern=NODE_ID)
    summary: HealthSummaryOut
    rounds: list[HealthRoundOut] = Field(description="newest first")


class ScoreComponentOut(BaseModel):
    name: Literal["uptime", "latency"]
    value: float = Field(ge=0, le=1)
    weight: float = Field(ge=0, le=1, description="the component's share of the score")
    contribution: float = Field(ge=0, le=1, description="value x weight")


class ProbeNowOut(BaseModel):
    """One probe of the node, run now with the probers' own code (nonce, signed proof). It is
    not stored and does not count for the score: scoring uses the probers' rounds only."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "node_id": _NODE,
                "verdict": "up",
                "reason": "ok",
                "fix": "nothing to fix: the node's agent answered with a valid signed proof",
                "latency_ms": 12.4,
                "attempts": 3,
                "answered": 3,
                "probed_at": "2026-01-01T00:00:00Z",
                "stored": False,
                "score_components": [
                    {"name": "uptime", "value": 1.0, "weight": 0.5, "contribution": 0.5},
                    {"name": "latency", "value": 1.0, "weight": 0.15, "contribution": 0.15},
                ],
                "probe_score": 0.65,
            }
        }
    )

    node_id: str = Field(pattern=NODE_ID)
    verdict: Literal["up", "down"]
    reason: ReasonCode
    fix: Fix
    latency_ms: float | None = Field(description="median round trip of the answered attempts")
    attempts: int = Field(ge=0, le=10, description="0: not probed (see `reason`)")
    answered: int = Field(ge=0, le=10)
    probed_at: datetime
    stored: bool = Field(description="always false: on-demand probes are not rounds")
    score_components: list[ScoreComponentOut] = Field(
        description="the probe-measured parts of the current formula, as this probe would earn "
        "them if every round of an epoch went like it"
    )
    probe_score: float = Field(
        ge=0,
        le=1,
        description="their sum: the most uptime and latency would add to the score (at most "
        "their weights' sum, 0.65 today; handshakes and traffic make up the rest)",
    )
