"""What the control plane published for reward epochs, served to operators: the published
data of an epoch (the bytes whose keccak256 is the on-chain `dataHash`) and an operator's
cumulative amount with its proof from the latest accepted epoch."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.chain.client import ChainReader
from control_plane.errors import AppError, NotFound
from control_plane.rewards.claims_schemas import RewardOut
from control_plane.rewards.posting.repository import PostingRepository

log = logging.getLogger("nodus.rewards.publication")


class RewardsOutOfSync(AppError):
    """The chain's accepted root is not one this control plane stored."""

    status_code, code = 503, "rewards_out_of_sync"


@dataclass(frozen=True, slots=True)
class PublishedData:
    data: bytes
    data_hash: str


async def published_data(session: AsyncSession, chain_id: int, epoch: int) -> PublishedData:
    """The exact published bytes of `epoch` (proposed, pending, accepted or revoked alike: the
    DAO checks a pending root against them during its challenge window)."""
    found = await PostingRepository(session).data(chain_id, epoch)
    if found is None:
        raise NotFound(f"no data published for epoch {epoch}")
    return PublishedData(*found)


async def reward_status(session: AsyncSession, chain: ChainReader, address: str) -> RewardOut:
    """`address`'s leaf in the latest accepted epoch's tree (stored here) and what it claimed
    (read from the contract at the same block as the accepted root)."""
    account = address.lower()
    view = await chain.distributor.claim_view(account)
    if view.root_epoch == 0:
        raise NotFound("no reward epoch has been accepted yet")
    repository = PostingRepository(session)
    publication = await repository.publication(chain.chain_id, view.root_epoch)
    if publication is None or publication.root != view.current_root:
        log.error(
            "accepted root not stored here",
            extra={"epoch": view.root_epoch, "root": view.current_root},
        )
        raise RewardsOutOfSync(f"the tree of accepted epoch {view.root_epoch} is not available")
    leaf = await repository.leaf(chain.chain_id, view.root_epoch, account)
    if leaf is None:
        raise NotFound(f"{account} has no reward in epoch {view.root_epoch}")
    return RewardOut(
        cumulative=str(leaf.cumulative),
        claimed=str(view.claimed),
        claimable=str(max(0, leaf.cumulative - view.claimed)),
        epoch=view.root_epoch,
        proof=leaf.proof,
    )
