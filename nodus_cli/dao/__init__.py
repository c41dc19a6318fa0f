"""`nodus dao`: the DAO member's commands (OpenZeppelin Governor + TimelockController).

delegate -> propose <action> -> vote -> queue -> execute, and `status` at any point. A proposal is
named by the Governor's proposal id; `queue` and `execute` need its actions, which are read back
from its `ProposalCreated` event on the chain (and checked against the id), so there is no local
state to lose and any Governor-compatible tool can take over at any step.
"""

from __future__ import annotations

import typer

from nodus_cli.dao.propose import propose_app
from nodus_cli.dao.status import status
from nodus_cli.dao.vote import delegate, execute, queue, vote

dao_app = typer.Typer(
    name="dao",
    help="Govern Nodus: delegate votes, propose, vote, queue, execute, and follow proposals.",
    no_args_is_help=True,
)
dao_app.command()(delegate)
dao_app.add_typer(propose_app, name="propose")
dao_app.command()(vote)
dao_app.command()(queue)
dao_app.command()(execute)
dao_app.command()(status)
