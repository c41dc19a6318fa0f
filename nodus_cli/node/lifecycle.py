"""`nodus node set-agent | exit | withdraw`: the operator's on-chain changes to a node in
NodeRegistry (`setAgent`, `requestExit`, `withdraw`). Each is checked against the node's
on-chain state first, so a call the registry would refuse is explained, not sent."""

from __future__ import annotations

from typing import Annotated

import typer

from nodus_cli.node.inputs import NodeIdArgument
from nodus_cli.node.registry import operated_node
from nodus_cli.support.chain import connect, run, send
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import CliError, console, format_nds, format_time
from nodus_cli.support.parsing import parse_address
from nodus_cli.support.wallet import load_account

AgentArgument = Annotated[
    str,
    typer.Argument(
        parser=parse_address,
        metavar="AGENT",
        help="The new agent address (`nodus-agent init --node-id ID` prints it).",
    ),
]


@shared_options("key_file", "rpc_url", "deployments_dir")
def set_agent(node_id: NodeIdArgument, agent: AgentArgument, *, options: Options) -> None:
    """Name a new agent key for the node (a lost or rotated hot key); earnings are unaffected.

    Example: nodus node set-agent 0x6e6f…a1 0x90F79bf6EB2c4f870365E785982E1f101E93b906
    """

    async def main() -> None:
        account = load_account(options.key_file)
        chain = await connect(options.rpc_url, options.deployments_dir)
        node = await operated_node(chain, node_id, account.address)
        if node.status == "withdrawn":
            raise CliError(f"node {node.shown_id} is withdrawn: it has no agent any more", 2)
        if node.agent == agent:
            console.print(f"the agent of {node.shown_id} is already {agent}: nothing sent")
            return
        registry = chain.contract("NodeRegistry")
        await send(chain, account, registry.functions.setAgent(node_id, agent), "set the agent")
        console.print(
            f"agent of {node.shown_id}: {node.agent} -> {agent}; the agent signs in with the new "
            "key from its next login (restart nodus-agent with the new key)"
        )

    run(main)


@shared_options("key_file", "rpc_url", "deployments_dir")
def exit_node(node_id: NodeIdArgument, *, options: Options) -> None:
    """Stop serving: the node leaves the Active set and its stake starts unbonding
    (NodeRegistry.requestExit); `nodus node withdraw` returns it after the unbonding period.

    Example: nodus node exit 0x6e6f…a1 --key-file ~/.nodus/operator.key
    """

    async def main() -> None:
        account = load_account(options.key_file)
        chain = await connect(options.rpc_url, options.deployments_dir)
        node = await operated_node(chain, node_id, account.address)
        now = await chain.now()
        if node.status == "exiting":
            console.print(
                f"node {node.shown_id} is already exiting: withdraw from "
                f"{format_time(node.unbonding_end, now)}"
            )
            return
        if node.status != "active":
            raise CliError(f"node {node.shown_id} is {node.status}: only an active node exits", 2)
        registry = chain.contract("NodeRegistry")
        await send(chain, account, registry.functions.requestExit(node_id), "request exit")
        exited = await operated_node(chain, node_id, account.address)
        console.print(
            f"node {node.shown_id} is exiting: {format_nds(exited.stake)} unbond until "
            f"{format_time(exited.unbonding_end, await chain.now())}; then: nodus node withdraw "
            f"{node.shown_id}"
        )

    run(main)


@shared_options("key_file", "rpc_url", "deployments_dir")
def withdraw(node_id: NodeIdArgument, *, options: Options) -> None:
    """Take the stake back after the unbonding period (NodeRegistry.withdraw); before then, says
    when it becomes possible.

    Example: nodus node withdraw 0x6e6f…a1 --key-file ~/.nodus/operator.key
    """

    async def main() -> None:
        account = load_account(options.key_file)
        chain = await connect(options.rpc_url, options.deployments_dir)
        node = await operated_node(chain, node_id, account.address)
        if node.status == "withdrawn":
            console.print(f"node {node.shown_id} is already withdrawn: nothing sent")
            return
        if node.status != "exiting":
            raise CliError(
                f"node {node.shown_id} is {node.status}: run nodus node exit {node.shown_id} "
                "first; the stake unbonds, then it can be withdrawn",
                2,
            )
        now = await chain.now()
        if now < node.unbonding_end:
            raise CliError(
                f"node {node.shown_id} is still unbonding: withdraw from "
                f"{format_time(node.unbonding_end, now)}"
            )
        registry = chain.contract("NodeRegistry")
        await send(chain, account, registry.functions.withdraw(node_id), "withdraw the stake")
        console.print(
            f"withdrew {format_nds(node.stake)} of node {node.shown_id} to {account.address}"
        )

    run(main)
