"""What the `nodus-agent` commands share: the --config option, the consoles, the failure exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from node_agent.config import CONFIG_ENV

console = Console(soft_wrap=True)
errors = Console(stderr=True)
SYSTEM_STATE_DIR = Path("/var/lib/nodus-agent")

ConfigPath = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help="The agent's TOML config (env NODUS_AGENT_CONFIG).",
    ),
]


def fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)
