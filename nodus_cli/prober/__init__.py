"""`nodus prober`: measure nodes as an independent prober, with its own key."""

from __future__ import annotations

import typer

from nodus_cli.prober import rounds

prober_app = typer.Typer(help="Measure nodes as an independent prober.", no_args_is_help=True)
prober_app.command()(rounds.address)
prober_app.command()(rounds.run)
