"""`nodus contracts`: the deployed contracts of a chain and whether each has code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from nodus_cli.support.exits import ExitCode
from nodus_cli.support.options import Options, shared_options

console = Console()


@shared_options("rpc_url", "deployments_dir")
def contracts(*, options: Options) -> None:
    """Show the deployed contracts of the chain at RPC_URL and whether each has code."""
    from control_plane.chain.contracts import DeploymentError

    try:
        rows = asyncio.run(_contract_rows(options.rpc_url, options.deployments_dir))
    except DeploymentError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=ExitCode.USAGE) from exc
    table = Table("contract", "address", "code")
    for name, address, has_code in rows:
        table.add_row(name, address, "yes" if has_code else "[red]none[/red]")
    console.print(table)
    if not all(has_code for _, _, has_code in rows):
        raise typer.Exit(code=ExitCode.REFUSED)


async def _contract_rows(rpc_url: str, deployments_dir: Path) -> list[tuple[str, str, bool]]:
    from web3 import AsyncWeb3

    from control_plane.chain.contracts import Deployment

    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    deployment = Deployment.for_chain(await w3.eth.chain_id, deployments_dir)
    codes = await asyncio.gather(*(w3.eth.get_code(a) for a in deployment.addresses.values()))
    return [
        (name, address, len(code) > 0)
        for (name, address), code in zip(deployment.addresses.items(), codes, strict=True)
    ]
