"""`nodus rewards show | claim`: what an address has earned, and claiming it with the Merkle
proof from the control plane, checked against the chain's current root first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from nodus_cli.rewards.api import (
    AddressOption,
    Rewards,
    address_of,
    fetch_rewards,
)
from nodus_cli.rewards.pending import PendingReward, pending_reward
from nodus_cli.support.chain import connect, events_in, rpc, run, send
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    CliError,
    console,
    err_console,
    format_nds,
    format_time,
)
from nodus_cli.support.wallet import load_account

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

# --- show ---------------------------------------------------------------------------------


@shared_options("key_file", "api_url", "rpc_url", "deployments_dir", "as_json")
def show(
    address: AddressOption = None,
    *,
    options: Options,
) -> None:
    """What the address has earned (cumulative), claimed, and can claim now, and what a root
    still in its challenge window adds and when it becomes claimable.

    Example: nodus rewards show --address 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    """

    async def main() -> tuple[ChecksumAddress, Rewards | None, int | None, PendingReward | None]:
        who = address_of(address, options.key_file)
        view = await fetch_rewards(options.api_url, who)
        on_chain: int | None = None
        pending: PendingReward | None = None
        try:  # the chain is the authority on what was claimed; the API may lag a few blocks
            chain = await connect(options.rpc_url, options.deployments_dir)
            rewards = chain.contract("RewardDistributor")
            on_chain = int(await rpc(chain, rewards.functions.claimed(who).call()))
            pending = await pending_reward(chain, options.api_url, who)
        except CliError as exc:
            err_console.print(f"[yellow]warning:[/yellow] {escape(exc.message)}")
        return who, view, on_chain, pending

    who, view, on_chain, pending = run(main)
    if options.as_json:
        console.print_json(
            json.dumps(
                {
                    "address": who,
                    "cumulative": str(view.cumulative if view else 0),
                    "claimed": str(view.claimed if view else 0),
                    "claimable": str(view.claimable if view else 0),
                    "epoch": view.epoch if view else None,
                    "claimed_on_chain": None if on_chain is None else str(on_chain),
                    "pending": pending_json(pending),
                }
            )
        )
        return
    if view is None and pending is None:
        console.print(f"{who} has no rewards yet")
        return
    table = Table(title=f"rewards of {who}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    if view is not None:
        table.add_row("epoch", str(view.epoch) if view.epoch is not None else "-")
        table.add_row("earned (cumulative)", format_nds(view.cumulative))
        table.add_row("claimed", format_nds(view.claimed))
        if on_chain is not None and on_chain != view.claimed:
            table.add_row("claimed (on-chain)", format_nds(on_chain))
        table.add_row("claimable", f"[green]{format_nds(view.claimable)}[/green]")
    else:
        table.add_row("claimable", "nothing yet (no accepted root names this address)")
    if pending is not None:
        table.add_row(*pending_row(pending))
    console.print(table)
    if view is not None and view.claimable:
        console.print("claim it with: nodus rewards claim")


def pending_json(pending: PendingReward | None) -> dict[str, object] | None:
    if pending is None:
        return None
    return {
        "epoch": pending.epoch,
        "amount": str(pending.amount),
        "cumulative": str(pending.cumulative),
        "claimable_at": pending.claimable_at,
    }


def pending_row(pending: PendingReward) -> tuple[str, str]:
    """`pending (epoch N)` -> `+X NDS, claimable from <time> (in ...)`."""
    when = format_time(pending.claimable_at, pending.now)
    if pending.claimable_at <= pending.now:
        when += ", once the oracle accepts the root"
    return (
        f"pending (epoch {pending.epoch})",
        f"[yellow]+{format_nds(pending.amount)}[/yellow], claimable from {when}",
    )


# --- claim --------------------------------------------------------------------------------


@shared_options("key_file", "api_url", "rpc_url", "deployments_dir")
def claim(
    address: AddressOption = None,
    *,
    options: Options,
) -> None:
    """Claim everything unclaimed, with the Merkle proof from the API.

    Sent with your key; the NDS always go to the operator (--address, by default your own)."""
    from eth_utils.address import to_checksum_address

    from control_plane.rewards.formula.merkle import RewardTree

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        account = load_account(options.key_file)
        who = to_checksum_address(address) if address else account.address
        view = await fetch_rewards(options.api_url, who)
        if view is None or view.cumulative == 0:
            console.print(f"nothing to claim: {who} has no rewards yet")
            return
        rewards = chain.contract("RewardDistributor")
        token = chain.contract("NDSToken")
        root = bytes(await rpc(chain, rewards.functions.currentRoot().call()))
        root_epoch = int(await rpc(chain, rewards.functions.rootEpoch().call()))
        checker = RewardTree(root=root, proofs={}, amounts={})
        if not checker.verify(who, view.cumulative, view.proof):
            raise CliError(
                f"the API's proof (epoch {view.epoch}) does not match the chain's current root "
                f"(epoch {root_epoch}); if that epoch is still in its challenge window, claim "
                "after it is accepted"
            )
        already = int(await rpc(chain, rewards.functions.claimed(who).call()))
        if view.cumulative <= already:
            console.print(
                f"nothing to claim: {who} has already claimed {format_nds(already)} of "
                f"{format_nds(view.cumulative)} earned"
            )
            return
        before = int(await rpc(chain, token.functions.balanceOf(who).call()))
        receipt = await send(
            chain,
            account,
            rewards.functions.claim(who, view.cumulative, view.proof),
            f"claim {format_nds(view.cumulative - already)}",
        )
        claimed = events_in(receipt, rewards.events.Claimed())
        amount = int(claimed[0]["args"]["amount"]) if claimed else view.cumulative - already
        after = int(await rpc(chain, token.functions.balanceOf(who).call()))
        console.print(
            f"claimed {format_nds(amount)} for {who} (epoch {root_epoch}; earned in total "
            f"{format_nds(view.cumulative)}); balance {format_nds(before)} -> {format_nds(after)}"
        )

    run(main)
