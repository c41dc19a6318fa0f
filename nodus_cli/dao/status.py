"""`nodus dao status`: a proposal's state, votes, quorum, voting window, eta and actions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from rich.markup import escape
from rich.table import Table

from nodus_cli.dao.proposals import (
    ProposalIdArgument,
    describe_action,
    find_proposal,
    proposal_state,
)
from nodus_cli.support.chain import PROPOSAL_STATES, Chain, connect, rpc, run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import CliError, console, err_console, format_nds, format_time

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress


@dataclass(frozen=True, slots=True)
class ProposalStatus:
    proposal_id: int
    state: str
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int  # 4% of the votable supply, fixed when the proposal was created
    snapshot: int
    deadline: int
    eta: int | None
    now: int
    proposer: ChecksumAddress
    description: str | None
    actions: list[str] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.proposal_id),
            "state": self.state,
            "for": str(self.votes_for),
            "against": str(self.votes_against),
            "abstain": str(self.votes_abstain),
            "quorum": str(self.quorum),
            "quorum_reached": self.votes_for + self.votes_abstain >= self.quorum,
            "snapshot": self.snapshot,
            "deadline": self.deadline,
            "eta": self.eta,
            "now": self.now,
            "proposer": self.proposer,
            "description": self.description,
            "actions": self.actions,
        }


async def proposal_status(chain: Chain, proposal_id: int) -> ProposalStatus:
    from eth_utils.address import to_checksum_address

    governor = chain.contract("NodusGovernor")
    state = await proposal_state(chain, proposal_id)
    against, for_, abstain = await rpc(chain, governor.functions.proposalVotes(proposal_id).call())
    snapshot = int(await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()))
    deadline = int(await rpc(chain, governor.functions.proposalDeadline(proposal_id).call()))
    eta = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
    proposer = await rpc(chain, governor.functions.proposalProposer(proposal_id).call())
    now = await chain.now()
    quorum = int(await rpc(chain, governor.functions.proposalQuorum(proposal_id).call()))
    description: str | None = None
    actions: list[str] | None = None
    try:
        proposal = await find_proposal(chain, proposal_id)
    except CliError as exc:
        err_console.print(f"[yellow]warning:[/yellow] {escape(exc.message)}")
    else:
        description = proposal.description
        actions = [describe_action(chain, a) for a in proposal.actions]
    return ProposalStatus(
        proposal_id=proposal_id,
        state=PROPOSAL_STATES[state],
        votes_for=int(for_),
        votes_against=int(against),
        votes_abstain=int(abstain),
        quorum=quorum,
        snapshot=snapshot,
        deadline=deadline,
        eta=eta or None,
        now=now,
        proposer=to_checksum_address(proposer),
        description=description,
        actions=actions,
    )


_STATE_STYLE: Final = {
    "Pending": "yellow",
    "Active": "cyan",
    "Succeeded": "green",
    "Queued": "blue",
    "Executed": "bold green",
    "Defeated": "red",
    "Canceled": "red",
    "Expired": "red",
}


@shared_options("as_json", "rpc_url", "deployments_dir", json_help="Print JSON instead of a table.")
def status(
    proposal_id: ProposalIdArgument,
    *,
    options: Options,
) -> None:
    """A proposal's state, votes, quorum, voting window, timelock eta and actions."""

    async def main() -> ProposalStatus:
        chain = await connect(options.rpc_url, options.deployments_dir)
        return await proposal_status(chain, proposal_id)

    result = run(main)
    if options.as_json:
        console.print_json(json.dumps(result.as_json()))
        return
    console.print(f"proposal {result.proposal_id}")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    style = _STATE_STYLE.get(result.state, "white")
    table.add_row("state", f"[{style}]{result.state}[/{style}]")
    if result.description is not None:
        table.add_row(
            "title", escape(result.description.splitlines()[0]) if result.description else ""
        )
    table.add_row("for", format_nds(result.votes_for))
    table.add_row("against", format_nds(result.votes_against))
    table.add_row("abstain", format_nds(result.votes_abstain))
    counted = result.votes_for + result.votes_abstain
    reached = "reached" if counted >= result.quorum else "not reached"
    table.add_row(
        "quorum",
        f"{format_nds(result.quorum)}: {reached} ({format_nds(counted)} for+abstain)",
    )
    table.add_row("snapshot", format_time(result.snapshot, result.now))
    table.add_row("deadline", format_time(result.deadline, result.now))
    table.add_row("eta", format_time(result.eta, result.now) if result.eta else "-")
    table.add_row("proposer", result.proposer)
    for i, action in enumerate(result.actions or [], 1):
        table.add_row(f"action {i}", escape(action))
    console.print(table)
