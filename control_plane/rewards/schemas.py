"""What the scores and epochs API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.indexer.models import RewardEpoch
from control_plane.patterns import ADDRESS, EPOCH_CURSOR, HASH32, INT64_MAX, WEI
from control_plane.rewards.formula.scoring import PPM
from control_plane.rewards.repository import NodeScoreView
from control_plane.rewards.score_models import OperatorAllocation, ScoredEpoch

EpochStatus = Literal["scored", "proposed", "accepted", "revoked"]

_BREAKDOWN_EXAMPLE: dict[str, Any] = {
    "uptime": {"value_ppm": 937500, "weight": 50, "contribution_ppm": 468750},
    "handshake": {"value_ppm": 900000, "weight": 15, "contribution_ppm": 135000},
    "latency": {"value_ppm": 978947, "weight": 15, "contribution_ppm": 146842},
    "traffic": {"value_ppm": 572538, "weight": 20, "contribution_ppm": 114507},
    "raw_ppm": 865099,
    "smoothed_ppm": 861530,
    "score_ppm": 861530,
}
_SCORE_EXAMPLE: dict[str, Any] = {
    "epoch": 12,
    "starts_at": "2026-05-01T12:00:00Z",
    "ends_at": "2026-05-01T13:00:00Z",
    "formula_version": "nodus-score/1",
    "active": True,
    "score": 0.86153,
    "raw_score": 0.865099,
    "smoothed_score": 0.86153,
    "breakdown": _BREAKDOWN_EXAMPLE,
    "reasons": [
        "uptime 0.94: 3 of 48 probe rounds failed",
        "handshake 0.90: 9 of 10 peers with traffic completed a recent handshake",
        "latency 0.98: median round trip 70.0 ms",
        "traffic 0.57: 2.1 GB served to 9 peers (full marks at 100 Mbit/s over the epoch)",
        "this epoch 0.87 = 50% x 0.94 + 15% x 0.90 + 15% x 0.98 + 20% x 0.57",
        "smoothed 0.86: 30% this epoch (0.87) + 70% previous (0.86)",
        "score 0.86",
    ],
}


class NodeScoreOut(BaseModel):
    """A node's score for one epoch: the score the allocation used, this epoch alone, the
    smoothed value, each component's value, weight and contribution (ppm: 1000000 = 1.0), and
    the reasons in plain words."""

    model_config = ConfigDict(json_schema_extra={"example": _SCORE_EXAMPLE})

    epoch: int
    starts_at: datetime
    ends_at: datetime
    formula_version: str
    active: bool = Field(description="Active in NodeRegistry; a node that is not scores 0")
    score: float = Field(ge=0, le=1, description="what the allocation used")
    raw_score: float = Field(ge=0, le=1, description="this epoch alone, before smoothing")
    smoothed_score: float = Field(ge=0, le=1, description="the EWMA carried to the next epoch")
    breakdown: dict[str, Any]
    reasons: list[str]


class NodeScorePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"items": [_SCORE_EXAMPLE], "next_cursor": "12"}}
    )

    items: list[NodeScoreOut]
    next_cursor: str | None = Field(
        pattern=EPOCH_CURSOR, description="pass as `cursor` for the next page; null: done"
    )


class AllocationOut(BaseModel):
    operator: str = Field(pattern=ADDRESS)
    amount: str = Field(pattern=WEI, description="this epoch's part, NDS wei (decimal string)")
    cumulative: str = Field(pattern=WEI, description="the operator's leaf: cumulative NDS wei")


class ChainEpochOut(BaseModel):
    """The epoch as the RewardDistributor announced it (from the indexer)."""

    root: str = Field(pattern=HASH32)
    data_hash: str = Field(pattern=HASH32)
    total_cumulative: str = Field(pattern=WEI)
    valid_at: datetime = Field(description="end of the challenge window")
    proposed_tx_hash: str = Field(pattern=HASH32)
    settled_tx_hash: str | None = Field(pattern=HASH32)


class EpochOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "epoch": 12,
                "status": "accepted",
                "starts_at": "2026-05-01T12:00:00Z",
                "ends_at": "2026-05-01T13:00:00Z",
                "formula_version": "nodus-score/1",
                "root": "0x" + "3c" * 32,
                "data_hash": "0x" + "9a" * 32,
                "budget": "1000000000000000000000",
                "allocated": "1000000000000000000000",
                "total_cumulative": "12000000000000000000000",
                "nodes_scored": 3,
                "allocations": [
                    {
                        "operator": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
                        "amount": "600000000000000000000",
                        "cumulative": "7200000000000000000000",
                    }
                ],
                "chain": None,
            }
        }
    )

    epoch: int = Field(ge=1, le=INT64_MAX)
    status: EpochStatus = Field(
        description="scored: computed, not yet on-chain; proposed / accepted / revoked: as the "
        "RewardDistributor says"
    )
    starts_at: datetime | None
    ends_at: datetime | None
    formula_version: str | None
    root: str = Field(
        pattern=HASH32, description="the computed root (the chain's, if not scored here)"
    )
    data_hash: str = Field(pattern=HASH32, description="keccak256 of GET /v1/epochs/{n}/data")
    budget: str | None = Field(
        pattern=WEI, description="NDS wei, capped by what the pool can still pay"
    )
    allocated: str | None = Field(
        pattern=WEI,
        description="sum of this epoch's parts, NDS wei; below `budget` when nodes' stake caps "
        "held some back (that stays in the pool)",
    )
    total_cumulative: str = Field(pattern=WEI)
    nodes_scored: int
    allocations: list[AllocationOut]
    chain: ChainEpochOut | None = Field(description="the on-chain proposal; null: not proposed")


def node_score_out(view: NodeScoreView) -> NodeScoreOut:
    record = view.record
    return NodeScoreOut(
        epoch=record.epoch,
        starts_at=view.starts_at,
        ends_at=view.ends_at,
        formula_version=view.formula_version,
        active=record.active,
        score=record.score_ppm / PPM,
        raw_score=record.raw_ppm / PPM,
        smoothed_score=record.smoothed_ppm / PPM,
        breakdown=record.breakdown,
        reasons=list(record.reasons),
    )


def epoch_out(
    epoch: int,
    scored: ScoredEpoch | None,
    onchain: RewardEpoch | None,
    allocations: list[OperatorAllocation],
    nodes_scored: int,
) -> EpochOut:
    """The summary of an epoch from what was scored here and what the chain says (at least one
    of the two is known)."""
    chain = (
        None
        if onchain is None
        else ChainEpochOut(
            root=onchain.root,
            data_hash=onchain.data_hash,
            total_cumulative=str(int(onchain.total_cumulative)),
            valid_at=onchain.valid_at,
            proposed_tx_hash=onchain.proposed_tx_hash,
            settled_tx_hash=onchain.settled_tx_hash,
        )
    )
    if scored is None:
        if onchain is None:
            raise ValueError("an epoch known neither here nor on-chain")
        return EpochOut(
            epoch=epoch,
            status=_status(onchain.status),
            starts_at=None,
            ends_at=None,
            formula_version=None,
            root=onchain.root,
            data_hash=onchain.data_hash,
            budget=None,
            allocated=None,
            total_cumulative=str(int(onchain.total_cumulative)),
            nodes_scored=0,
            allocations=[],
            chain=chain,
        )
    return EpochOut(
        epoch=epoch,
        status="scored" if onchain is None else _status(onchain.status),
        starts_at=scored.starts_at,
        ends_at=scored.ends_at,
        formula_version=scored.formula_version,
        root=scored.root,
        data_hash=scored.data_hash,
        budget=str(int(scored.budget)),
        allocated=str(int(scored.allocated)),
        total_cumulative=str(int(scored.total_cumulative)),
        nodes_scored=nodes_scored,
        allocations=[
            AllocationOut(
                operator=a.operator, amount=str(int(a.amount)), cumulative=str(int(a.cumulative))
            )
            for a in allocations
        ],
        chain=chain,
    )


def _status(value: str) -> EpochStatus:
    if value == "proposed":
        return "proposed"
    if value == "accepted":
        return "accepted"
    if value == "revoked":
        return "revoked"
    raise ValueError(f"unknown epoch status {value!r}")
