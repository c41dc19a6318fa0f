"""`python -m nodus_cli`: the same as the `nodus` console script."""

from nodus_cli.app import app

app(prog_name="nodus")
