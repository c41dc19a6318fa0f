"""`nodus-agent`: what a node operator runs next to WireGuard/OpenVPN."""

from __future__ import annotations

import typer
from rich.console import Console

from node_agent import __version__

app = typer.Typer(help="Nodus node agent.", no_args_is_help=True)
console = Console()


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"nodus-agent {__version__}")


@app.callback()
def main() -> None:
    """Nodus node agent (init/run/status arrive with the agent issue)."""
