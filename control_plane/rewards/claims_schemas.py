"""Response shapes of the claims API. Amounts are decimal strings of NDS wei (exact)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from control_plane.patterns import HASH32, INT64_MAX, WEI


class RewardOut(BaseModel):
    """An operator's rewards as of the latest accepted epoch, and what `claim` needs."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "cumulative": "123000000000000000007",
                "claimed": "100000000000000000000",
                "claimable": "23000000000000000007",
                "epoch": 7,
                "proof": [
                    "0x1a8a5e2ae4a4e8b1b1b2a64a0e1a5b8b5b9b1c6ae5b6e1c2e3b3f5d1a7c9e8f1",
                    "0x9c3e0f1d2b4a5c6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6",
                ],
            }
        }
    )

    cumulative: str = Field(
        pattern=WEI,
        description="everything earned up to the latest accepted epoch (the leaf's amount)",
    )
    claimed: str = Field(pattern=WEI, description="what the RewardDistributor has paid out so far")
    claimable: str = Field(
        pattern=WEI, description="cumulative minus claimed: what one claim pays now"
    )
    epoch: int = Field(
        ge=1, le=INT64_MAX, description="the accepted epoch whose root the proof is for"
    )
    proof: list[Annotated[str, Field(pattern=HASH32)]] = Field(
        description="`claim(address, cumulative, proof)` on the RewardDistributor pays "
        "`claimable`; 0x-hex sibling hashes, leaf to root"
    )
