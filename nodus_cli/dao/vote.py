"""`nodus dao delegate | vote | queue | execute`: a proposal's way from votes to execution.

On a local anvil chain, `--advance-time` moves the clock past the delay in the way: the voting
delay before a vote, the voting period before queueing, the timelock delay before executing.
It is refused on any other chain.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from nodus_cli.dao.proposals import (
    ACTIVE,
    DEFEATED,
    PENDING,
    QUEUED,
    SUCCEEDED,
    ProposalIdArgument,
    Support,
    describe_action,
    find_proposal,
    proposal_state,
)
from nodus_cli.support.anvil import advance_to, require_local
from nodus_cli.support.chain import PROPOSAL_STATES, Chain, connect, events_in, rpc, run, send
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import CliError, console, err_console, format_nds, format_time
from nodus_cli.support.parsing import parse_address
from nodus_cli.support.wallet import load_account


@shared_options("key_file", "rpc_url", "deployments_dir")
def delegate(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            parser=parse_address,
            metavar="ADDRESS",
            help="Who votes with your NDS (default: yourself).",
        ),
    ] = None,
    *,
    options: Options,
) -> None:
    """Delegate your NDS voting power (to yourself by default).

    NDS only votes once delegated, and only in proposals created after the delegation."""
    from eth_utils.address import to_checksum_address

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        account = load_account(options.key_file)
        token = chain.contract("NDSToken")
        delegatee = to_checksum_address(to) if to else account.address
        balance = int(await rpc(chain, token.functions.balanceOf(account.address).call()))
        current = to_checksum_address(
            await rpc(chain, token.functions.delegates(account.address).call())
        )
        if current == delegatee:
            err_console.print(f"{account.address} already delegates to {delegatee}")
        else:
            await send(chain, account, token.functions.delegate(delegatee), "delegate")
        votes = int(await rpc(chain, token.functions.getVotes(delegatee).call()))
        console.print(
            f"{account.address} delegates its {format_nds(balance)} to {delegatee}; voting "
            f"power of {delegatee}: {format_nds(votes)}"
        )
        if balance == 0:
            err_console.print(
                "[yellow]warning:[/yellow] this account holds no NDS: there is nothing to vote with"
            )

    run(main)


@shared_options("advance_time", "key_file", "rpc_url", "deployments_dir")
def vote(
    proposal_id: ProposalIdArgument,
    support: Annotated[Support, typer.Argument(metavar="for|against|abstain")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Recorded on-chain with the vote.")
    ] = None,
    *,
    options: Options,
) -> None:
    """Vote on an Active proposal (--advance-time: past the voting delay first)."""

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        if options.advance_time:
            require_local(chain)
        account = load_account(options.key_file)
        governor = chain.contract("NodusGovernor")
        state = await proposal_state(chain, proposal_id)
        if state == PENDING:
            snapshot = int(
                await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call())
            )
            if not options.advance_time:
                raise CliError(
                    f"voting on proposal {proposal_id} opens after "
                    f"{format_time(snapshot, await chain.now())}; wait (on a local chain: "
                    "--advance-time)"
                )
            await advance_to(chain, snapshot + 1, "past the voting delay")
            state = await proposal_state(chain, proposal_id)
        if state != ACTIVE:
            raise CliError(
                f"proposal {proposal_id} is {PROPOSAL_STATES[state]}; votes are taken only while "
                "it is Active"
            )
        if await rpc(chain, governor.functions.hasVoted(proposal_id, account.address).call()):
            raise CliError(f"{account.address} has already voted on proposal {proposal_id}")
        call = (
            governor.functions.castVoteWithReason(proposal_id, support.code, reason)
            if reason
            else governor.functions.castVote(proposal_id, support.code)
        )
        receipt = await send(chain, account, call, f"vote {support.value}")
        cast = events_in(receipt, governor.events.VoteCast())
        weight = int(cast[0]["args"]["weight"]) if cast else 0
        console.print(
            f"{account.address} voted {support.value} on proposal {proposal_id} with "
            f"{format_nds(weight)}"
        )
        if weight == 0:
            err_console.print(
                "[yellow]warning:[/yellow] this vote weighs nothing: the account had no "
                "delegated votes at the proposal's snapshot (delegate before proposals are made)"
            )

    run(main)


@shared_options("advance_time", "key_file", "rpc_url", "deployments_dir")
def queue(
    proposal_id: ProposalIdArgument,
    *,
    options: Options,
) -> None:
    """Queue a Succeeded proposal in the timelock (--advance-time: past the voting period)."""

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        if options.advance_time:
            require_local(chain)
        account = load_account(options.key_file)
        governor = chain.contract("NodusGovernor")
        state = await proposal_state(chain, proposal_id)
        if state in (PENDING, ACTIVE):
            deadline = int(
                await rpc(chain, governor.functions.proposalDeadline(proposal_id).call())
            )
            if not options.advance_time:
                raise CliError(
                    f"voting on proposal {proposal_id} closes at "
                    f"{format_time(deadline, await chain.now())}; queue it after that (on a local "
                    "chain: --advance-time)"
                )
            await advance_to(chain, deadline + 1, "past the voting period")
            state = await proposal_state(chain, proposal_id)
        if state == DEFEATED:
            raise CliError(
                f"proposal {proposal_id} was Defeated: {await _why_defeated(chain, proposal_id)}"
            )
        if state != SUCCEEDED:
            raise CliError(
                f"proposal {proposal_id} is {PROPOSAL_STATES[state]}; only a Succeeded proposal "
                "can be queued"
            )
        proposal = await find_proposal(chain, proposal_id)
        await send(chain, account, governor.functions.queue(*proposal.operation()), "queue")
        eta = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
        console.print(
            f"proposal {proposal_id} is queued; it can be executed from "
            f"{format_time(eta, await chain.now())}"
        )
        console.print(f"next: nodus dao execute {proposal_id}")

    run(main)


@shared_options("advance_time", "key_file", "rpc_url", "deployments_dir")
def execute(
    proposal_id: ProposalIdArgument,
    *,
    options: Options,
) -> None:
    """Execute a Queued proposal after the timelock delay (--advance-time: past that delay)."""

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        if options.advance_time:
            require_local(chain)
        account = load_account(options.key_file)
        governor = chain.contract("NodusGovernor")
        state = await proposal_state(chain, proposal_id)
        if state == SUCCEEDED:
            raise CliError(
                f"proposal {proposal_id} is not queued yet: nodus dao queue {proposal_id}"
            )
        if state != QUEUED:
            raise CliError(
                f"proposal {proposal_id} is {PROPOSAL_STATES[state]}; only a Queued proposal "
                "can be executed"
            )
        eta = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
        now = await chain.now()
        if now < eta:
            if not options.advance_time:
                raise CliError(
                    f"the timelock holds proposal {proposal_id} until {format_time(eta, now)} "
                    "(on a local chain: --advance-time)"
                )
            await advance_to(chain, eta, "past the timelock delay")
        proposal = await find_proposal(chain, proposal_id)
        err_console.print("Executing:")
        for i, action in enumerate(proposal.actions, 1):
            err_console.print(f"  {i}. {escape(describe_action(chain, action))}")
        await send(chain, account, governor.functions.execute(*proposal.operation()), "execute")
        console.print(f"proposal {proposal_id} is executed")

    run(main)


async def _why_defeated(chain: Chain, proposal_id: int) -> str:
    governor = chain.contract("NodusGovernor")
    against, for_, abstain = await rpc(chain, governor.functions.proposalVotes(proposal_id).call())
    quorum = int(await rpc(chain, governor.functions.proposalQuorum(proposal_id).call()))
    reasons = []
    if for_ + abstain < quorum:
        reasons.append(
            f"quorum not reached ({format_nds(for_ + abstain)} for+abstain of {format_nds(quorum)})"
        )
    if for_ <= against:
        reasons.append(f"not more for ({format_nds(for_)}) than against ({format_nds(against)})")
    return "; ".join(reasons) or "see nodus dao status"
