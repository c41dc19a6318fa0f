"""`python -m node_agent` is `nodus-agent`."""

from node_agent.cli import app

app(prog_name="nodus-agent")
