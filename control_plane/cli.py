"""`nodus`: the command line of subscribers, operators and DAO members."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from web3 import AsyncWeb3

from control_plane import __version__
from control_plane.chain.contracts import Deployment, DeploymentError
from control_plane.cli_dao import dao_app
from control_plane.cli_rewards import rewards_app
from control_plane.cli_rewards_watch import watch
from control_plane.paths import DEFAULT_DEPLOYMENTS_DIR
from control_plane.prober.cli import app as prober_app

app = typer.Typer(help="Nodus: a decentralized VPN paid on-chain.", no_args_is_help=True)
console = Console()
app.add_typer(dao_app, name="dao")
rewards_app.command()(watch)
app.add_typer(rewards_app, name="rewards")
app.add_typer(prober_app, name="prober")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"nodus {__version__}")


@app.command()
def contracts(
    rpc_url: Annotated[str, typer.Option(envvar="NODUS_RPC_URL")] = "http://127.0.0.1:8545",
    deployments_dir: Annotated[Path, typer.Option(envvar="NODUS_DEPLOYMENTS_DIR")] = (
        DEFAULT_DEPLOYMENTS_DIR
    ),
) -> None:
    """Show the deployed contracts of the chain at RPC_URL and whether each has code."""
    try:
        rows = asyncio.run(_contract_rows(rpc_url, deployments_dir))
    except DeploymentError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    table = Table("contract", "address", "code")
    for name, address, has_code in rows:
        table.add_row(name, address, "yes" if has_code else "[red]none[/red]")
    console.print(table)
    if not all(has_code for _, _, has_code in rows):
        raise typer.Exit(code=1)


async def _contract_rows(rpc_url: str, deployments_dir: Path) -> list[tuple[str, str, bool]]:
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    deployment = Deployment.for_chain(await w3.eth.chain_id, deployments_dir)
    codes = await asyncio.gather(*(w3.eth.get_code(a) for a in deployment.addresses.values()))
    return [
        (name, address, len(code) > 0)
        for (name, address), code in zip(deployment.addresses.items(), codes, strict=True)
    ]
