"""`nodus`: the command line of subscribers, operators and DAO members.

One group per folder (`account/`, `dao/`, `node/`, `rewards/`, `prober/`), one file per command
or small family; the subscriber's commands (`login`, `plan`, `subscribe`, `renew`, `nodes`,
`status`, `devices`, `revoke`) are top-level, in `subscriber/`. What the commands share (options,
exit codes, the chain, the wallet, the API session, parsing and output) is in `support/`.
"""

from __future__ import annotations

import typer

from control_plane import __version__
from nodus_cli.account import account_app
from nodus_cli.connect import down, up
from nodus_cli.connect.up import EPILOG as UP_EPILOG
from nodus_cli.contracts import contracts
from nodus_cli.dao import dao_app
from nodus_cli.node import node_app
from nodus_cli.prober import prober_app
from nodus_cli.rewards import rewards_app
from nodus_cli.subscriber.devices import devices, revoke
from nodus_cli.subscriber.login import login
from nodus_cli.subscriber.nodes import nodes
from nodus_cli.subscriber.plan import plan
from nodus_cli.subscriber.status import status
from nodus_cli.subscriber.subscribe import renew, subscribe
from nodus_cli.support.output import console

app = typer.Typer(help="Nodus: a decentralized VPN paid on-chain.", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(dao_app, name="dao")
app.add_typer(node_app, name="node")
app.add_typer(rewards_app, name="rewards")
app.add_typer(prober_app, name="prober")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"nodus {__version__}")


app.command()(contracts)
app.command()(login)
app.command()(plan)
app.command()(subscribe)
app.command()(renew)
app.command()(nodes)
app.command(epilog=UP_EPILOG)(up)
app.command()(down)
app.command()(status)
app.command()(devices)
app.command()(revoke)
