"""Public reward endpoints: an operator's claimable rewards with a proof, and the exact published
data of an epoch. Neither needs a token: the chain makes both public anyway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from control_plane.db import Session
from control_plane.dependencies import ChainDep
from control_plane.errors import ChainUnavailable, Invalid, NotFound, error_response
from control_plane.patterns import ADDRESS, INT64_MAX
from control_plane.rewards.claims_schemas import RewardOut
from control_plane.rewards.posting.publication import published_data, reward_status

router = APIRouter(tags=["rewards"])

ADDRESS_PATTERN = ADDRESS


_UNAVAILABLE = error_response(
    "the chain is unreachable (Retry-After)",
    ChainUnavailable,
    "the chain RPC is unreachable; retry shortly",
)


@router.get(
    "/rewards/{address}",
    response_model=RewardOut,
    responses={
        404: error_response(
            "no accepted epoch, or no reward for the address in it",
            NotFound,
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8 has no reward in epoch 7",
        ),
        422: error_response("not an address", Invalid, "path.address: String should match pattern"),
        503: _UNAVAILABLE,
    },
)
async def get_rewards(
    session: Session,
    chain: ChainDep,
    address: Annotated[str, Path(pattern=ADDRESS_PATTERN, description="operator wallet")],
) -> RewardOut:
    """The operator's cumulative rewards in the latest accepted epoch, what it has claimed (read
    from the RewardDistributor), what one claim pays now, and the Merkle proof for
    `claim(address, cumulative, proof)`."""
    return await reward_status(session, chain, address)


@router.get(
    "/epochs/{epoch}/data",
    response_class=Response,
    responses={
        200: {
            "description": "the published data, byte for byte (keccak256 of the body is the "
            "epoch's on-chain dataHash, also in the ETag)",
            "content": {"application/json": {}},
        },
        404: error_response("nothing published for the epoch", NotFound, "no data for epoch 9"),
        422: error_response("not an epoch number", Invalid, "path.epoch: Input should be >= 1"),
    },
)
async def get_epoch_data(
    session: Session,
    chain: ChainDep,
    epoch: Annotated[int, Path(ge=1, le=INT64_MAX, description="epoch number")],
) -> Response:
    """The exact bytes published for the epoch; recompute its scores, leaves and root from them
    (`nodus rewards verify`)."""
    published = await published_data(session, chain.chain_id, epoch)
    return Response(
        content=published.data,
        media_type="application/json",
        headers={"ETag": f'"{published.data_hash}"', "X-Data-Hash": published.data_hash},
    )
