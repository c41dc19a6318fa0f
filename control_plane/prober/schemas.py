"""What the probe API takes and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from control_plane.nodes.schemas import NodeId
from control_plane.patterns import ADDRESS, CURSOR, NODE_ID, WholeNumber
from control_plane.patterns import SIGNATURE as SIGNATURE_PATTERN

MAX_BATCH = 1_000
MAX_RTT_US = 60_000_000


def _address(value: str) -> str:
    return value.lower()


Address = Annotated[
    str,
    Field(
        pattern=ADDRESS,
        examples=["0x90f79bf6eb2c4f870365e785982e1f101e93b906"],
    ),
    AfterValidator(_address),
]
Signature = Annotated[str, Field(pattern=SIGNATURE_PATTERN)]

_SAMPLE_EXAMPLE: dict[str, Any] = {
    "prober": "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
    "node_id": "0x6e6f6465000000000000000000000000000000000000000000000000000000a1",
    "round": 1767225600,
    "attempts": 3,
    "rtt_us": [23120, 11873, 12002],
    "error": None,
    "signature": "0x" + "ab" * 65,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProbeSampleIn(_Strict):
    """One signed sample: the prober's EIP-191 signature over the canonical encoding of every
    other field plus the chain id (see docs/scoring.md)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": _SAMPLE_EXAMPLE})

    prober: Address
    node_id: NodeId
    round: Annotated[int, WholeNumber] = Field(
        strict=True, ge=0, le=2**40, description="the round's start, unix seconds"
    )
    attempts: Annotated[int, WholeNumber] = Field(strict=True, ge=1, le=10)
    rtt_us: list[Annotated[int, Field(strict=True, ge=0, le=MAX_RTT_US), WholeNumber]] = Field(
        max_length=10, description="round trips of the answered attempts (microseconds)"
    )
    error: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,32}$")
    signature: Signature

    @model_validator(mode="after")
    def _answers_within_attempts(self) -> Self:
        if len(self.rtt_us) > self.attempts:
            raise ValueError("more answers than attempts")
        return self


class ProbeBatchIn(_Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"samples": [_SAMPLE_EXAMPLE]}}
    )

    samples: list[ProbeSampleIn] = Field(min_length=1, max_length=MAX_BATCH)


class ProbeBatchOut(BaseModel):
    accepted: int = Field(description="new samples stored")
    duplicates: int = Field(description="samples already stored (same prober, node, round)")
    unknown_nodes: list[Annotated[str, Field(pattern=NODE_ID)]] = Field(
        description="node ids not registered here (not stored)"
    )


class ProbeTargetOut(BaseModel):
    node_id: str = Field(pattern=NODE_ID)
    url: str = Field(description="the node's health endpoint: http://<endpoint host:port>/health")
    agent: str = Field(
        description="the node's on-chain agent address: its health answers must be signed by "
        "this key (proof of service, see docs/scoring.md)"
    )


class ProbeTargetsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "chain_id": 31337,
                "targets": [
                    {
                        "node_id": _SAMPLE_EXAMPLE["node_id"],
                        "url": "http://vpn.example.net:51820/health",
                        "agent": "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
                    }
                ],
            }
        }
    )

    chain_id: int = Field(description="signed into every sample")
    targets: list[ProbeTargetOut]


class ProbeSampleOut(BaseModel):
    prober: str = Field(pattern=ADDRESS)
    node_id: str = Field(pattern=NODE_ID)
    round: int
    round_at: datetime
    attempts: int
    rtt_us: list[int]
    error: str | None
    signature: str = Field(pattern=SIGNATURE_PATTERN)
    verified: bool = Field(description="the signature recovers to the prober (checked on read)")


class ProbeSamplePage(BaseModel):
    items: list[ProbeSampleOut]
    next_cursor: str | None = Field(
        pattern=CURSOR, description="pass as `cursor` for the next page; null: done"
    )


class ProberIn(_Strict):
    name: str = Field(min_length=1, max_length=64, examples=["eu-west prober"])


class ProberOut(BaseModel):
    address: str = Field(pattern=ADDRESS)
    name: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool
