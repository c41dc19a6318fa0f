"""Rewards on their way: the root waiting out its challenge window (RewardDistributor's
`pendingRoot`), and what it gives an address, read from the epoch's published data (checked
against the on-chain data hash) so nobody's word is needed for the amount or the time."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from nodus_cli.rewards.api import API_TIMEOUT_S, fetch_rewards
from nodus_cli.rewards.recompute import parse_leaves
from nodus_cli.support.chain import Chain, rpc
from nodus_cli.support.exits import Unreachable
from nodus_cli.support.output import CliError


@dataclass(frozen=True, slots=True)
class PendingReward:
    epoch: int
    cumulative: int  # the address's leaf in the pending root
    amount: int  # what it adds to what the address can claim today (cumulative - accepted)
    claimable_at: int  # unix seconds: the window ends (acceptRoot may be sent from then on)
    now: int  # the later of the wall clock and the chain's (a dev chain's clock may run ahead)


async def pending_reward(chain: Chain, api_url: str, address: str) -> PendingReward | None:
    """The pending root's reward for `address`; None without a pending root or without a leaf
    for the address in it. CliError when the published data does not match the chain."""
    from eth_utils.crypto import keccak

    distributor = chain.contract("RewardDistributor")
    _root, data_hash, _total, epoch, valid_at = await rpc(
        chain, distributor.functions.pendingRoot().call()
    )
    if int(epoch) == 0:
        return None
    raw = await _published_bytes(api_url, int(epoch))
    if raw is None:
        raise CliError(
            f"epoch {int(epoch)} is pending on-chain but the control plane has not published its "
            "data"
        )
    if keccak(raw) != bytes(data_hash):
        raise CliError(
            f"the published data of pending epoch {int(epoch)} does not hash to its on-chain "
            f"dataHash: do not count on it (nodus rewards verify {int(epoch)})"
        )
    try:
        leaves = parse_leaves(json.loads(raw))
    except ValueError as exc:
        raise CliError(f"the published data of epoch {int(epoch)} is malformed: {exc}") from None
    mine = leaves.get(address.lower())
    if mine is None:
        return None
    accepted = await _accepted_cumulative(chain, api_url, address)
    return PendingReward(
        epoch=int(epoch),
        cumulative=mine,
        amount=max(0, mine - accepted),
        claimable_at=int(valid_at),
        now=max(int(time.time()), await chain.now()),
    )


async def _published_bytes(api_url: str, epoch: int) -> bytes | None:
    """The exact published bytes (the hash is over them, not over a re-encoding); None: 404."""
    url = api_url.rstrip("/") + f"/v1/epochs/{epoch}/data"
    try:
        async with httpx.AsyncClient(timeout=API_TIMEOUT_S) as http:
            response = await http.get(url)
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach the Nodus API at {api_url}: {exc}") from None
    if response.status_code == 404:
        return None
    if not response.is_success:
        raise CliError(f"the Nodus API answered {response.status_code} for {url}")
    return response.content


async def _accepted_cumulative(chain: Chain, api_url: str, address: str) -> int:
    """The address's leaf in the accepted root (0 before any, or without a leaf in it)."""
    distributor = chain.contract("RewardDistributor")
    if int(await rpc(chain, distributor.functions.rootEpoch().call())) == 0:
        return 0
    view = await fetch_rewards(api_url, address)
    return 0 if view is None else view.cumulative
