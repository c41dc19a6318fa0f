"""`nodus node`: an operator's node commands.

- `register`: stake and register a node on-chain, register it with the control plane, wait for
  the control plane's index, and print the agent's next step (re-run to resume);
- `status`: the node on-chain, at the control plane, its scores and health verdicts with their
  reasons, and the operator's claimable and pending rewards;
- `update`: endpoint, country, protocols or WireGuard key at the control plane;
- `set-agent`, `exit`, `withdraw`: the operator's NodeRegistry calls.
"""

from __future__ import annotations

import typer

from nodus_cli.node.lifecycle import exit_node, set_agent, withdraw
from nodus_cli.node.register import register
from nodus_cli.node.status import status
from nodus_cli.node.update import update

node_app = typer.Typer(
    name="node",
    help="Operate a VPN node: register, status, update, set-agent, exit, withdraw.",
    no_args_is_help=True,
)
node_app.command()(register)
node_app.command()(status)
node_app.command()(update)
node_app.command("set-agent")(set_agent)
node_app.command("exit")(exit_node)
node_app.command()(withdraw)
