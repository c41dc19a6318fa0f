"""Helpers of the reward posting tests: epochs built from plain values, posted and accepted
through the sender."""

from __future__ import annotations

import json

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.sender import TransactionSender
from control_plane.db import unit_of_work
from control_plane.jobs import Services
from control_plane.rewards.posting.publisher import (
    AcceptReport,
    Posting,
    accept_due_roots,
    post_epoch,
    refresh_publications,
)
from tests.support.devchain import advance_time


def published(epoch: int, cumulative: dict[str, int]) -> bytes:
    """Stand-in for the scorer's canonical JSON: the leaves, keys sorted, no whitespace."""
    document = {
        "epoch": epoch,
        "leaves": {account.lower(): str(amount) for account, amount in cumulative.items()},
        "type": "nodus-epoch/test",
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


async def accept(
    services: Services, sender: TransactionSender, w3: Web3Client, deployment: Deployment
) -> AcceptReport:
    """Waits out the challenge window, then runs the accept job and the sender."""
    distributor = contract(w3, deployment, "RewardDistributor")
    await advance_time(w3, await distributor.functions.challengePeriod().call())
    async with unit_of_work(services.sessions) as session:
        report = await accept_due_roots(services, session, sender=sender)
    assert report.accept_queued is not None
    entry = await sender.wait(f"accept-epoch-{report.accept_queued}")
    assert entry.status == "mined", entry.error
    async with unit_of_work(services.sessions) as session:
        await refresh_publications(services, session)
    return report


async def post_and_accept(
    services: Services,
    sender: TransactionSender,
    w3: Web3Client,
    deployment: Deployment,
    epoch: int,
    cumulative: dict[str, int],
) -> Posting:
    posting = await post_epoch(
        services, epoch, cumulative, published(epoch, cumulative), sender=sender
    )
    assert posting.status == "proposed"
    await accept(services, sender, w3, deployment)
    return posting
