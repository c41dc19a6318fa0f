"""The subscription as the chain holds it: price per period, period length and a wallet's
expiry (SubscriptionManager), and the governance proposals not yet executed that would change
the price (the Governor's ProposalCreated events whose action is `setPrice`), with the earliest
time each could execute."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nodus_cli.dao.proposals import ACTIVE, PENDING, QUEUED, SUCCEEDED
from nodus_cli.support.chain import PROPOSAL_STATES, Chain, get_logs, rpc

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress
    from web3.contract import AsyncContract

# The states in which a proposal may still execute.
OPEN_STATES: Final = (PENDING, ACTIVE, SUCCEEDED, QUEUED)
WARN_BEFORE_S: Final = 3 * 86_400  # `status` warns when less than this is left


@dataclass(frozen=True, slots=True)
class PriceProposal:
    """A proposal that would set the price per period to `new_price` (NDS wei)."""

    proposal_id: int
    state: str
    new_price: int
    earliest_execution: int  # unix seconds: the soonest the timelock could run it

    def as_json(self) -> dict[str, Any]:
        return {
            "proposal_id": str(self.proposal_id),
            "state": self.state,
            "new_price_wei": str(self.new_price),
            "earliest_execution": self.earliest_execution,
        }


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the chain says about `address`'s subscription at `now` (the chain's clock); with no
    address (no key), only the plan."""

    address: ChecksumAddress | None
    price: int  # NDS wei per period
    period: int  # seconds
    max_months: int
    expires_at: int  # unix seconds; 0: never paid
    now: int

    @property
    def active(self) -> bool:
        return self.expires_at > self.now

    @property
    def time_left(self) -> int:
        return max(0, self.expires_at - self.now)

    @property
    def expiring_soon(self) -> bool:
        return self.active and self.time_left < WARN_BEFORE_S

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "price_per_period_wei": str(self.price),
            "period_seconds": self.period,
            "max_months": self.max_months,
            "expires_at": self.expires_at or None,
            "active": self.active,
            "time_left_seconds": self.time_left,
            "expiring_soon": self.expiring_soon,
            "chain_time": self.now,
        }


async def read_subscription(chain: Chain, address: ChecksumAddress | None) -> Subscription:
    manager = chain.contract("SubscriptionManager")
    expires_at = 0
    if address is not None:
        expires_at = int(await rpc(chain, manager.functions.expiresAt(address).call()))
    return Subscription(
        address=address,
        price=int(await rpc(chain, manager.functions.pricePerPeriod().call())),
        period=await chain.constant("SubscriptionManager", "PERIOD"),
        max_months=await chain.constant("SubscriptionManager", "MAX_MONTHS"),
        expires_at=expires_at,
        now=await chain.now(),
    )


async def pending_price_changes(chain: Chain) -> list[PriceProposal]:
    """Open proposals (Pending, Active, Succeeded, Queued) with a `setPrice` action on the
    SubscriptionManager, oldest first. Earliest execution: Queued -> its eta; Succeeded -> now
    plus the timelock's delay; Pending or Active -> the vote's end plus that delay."""
    governor = chain.contract("NodusGovernor")
    manager = chain.contract("SubscriptionManager")
    latest = int(await rpc(chain, chain.w3.eth.block_number))
    created = await get_logs(
        chain,
        governor.events.ProposalCreated(),
        from_block=chain.deployment.start_block,
        to_block=latest,
    )
    if not created:
        return []
    delay = int(
        await rpc(chain, chain.contract("TimelockController").functions.getMinDelay().call())
    )
    now = await chain.now()
    found: list[PriceProposal] = []
    for event in created:
        args = event["args"]
        new_price = _set_price_in(manager, args["targets"], args["calldatas"])
        if new_price is None:
            continue
        proposal_id = int(args["proposalId"])
        state = int(await rpc(chain, governor.functions.state(proposal_id).call()))
        if state not in OPEN_STATES:
            continue
        if state == QUEUED:
            earliest = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
        elif state == SUCCEEDED:
            earliest = now + delay
        else:
            deadline = int(
                await rpc(chain, governor.functions.proposalDeadline(proposal_id).call())
            )
            earliest = deadline + 1 + delay
        found.append(PriceProposal(proposal_id, PROPOSAL_STATES[state], new_price, earliest))
    return found


def _set_price_in(manager: AsyncContract, targets: list[str], calldatas: list[bytes]) -> int | None:
    """The price a proposal's `setPrice` action on `manager` sets (the last one), if any."""
    price: int | None = None
    for target, calldata in zip(targets, calldatas, strict=True):
        if target.lower() != manager.address.lower() or len(calldata) < 4:
            continue
        try:
            function, inputs = manager.decode_function_input(bytes(calldata))
        except ValueError:
            continue
        if function.fn_name == "setPrice":
            price = int(inputs["newPrice"])
    return price
