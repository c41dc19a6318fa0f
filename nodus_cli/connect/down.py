"""`nodus down`: undoes what `nodus up` did (tunnel, routes, DNS, kill switch)."""

from __future__ import annotations

from nodus_cli.support.chain import run
from nodus_cli.support.output import console
from nodus_cli.tunnel.state import StateStore
from nodus_cli.tunnel.system import TunnelError, is_root
from nodus_cli.tunnel.teardown import tear_down


def down() -> None:
    """Take the tunnel down and restore DNS and the firewall as they were.

    Example: sudo nodus down
    """

    async def main() -> None:
        store = StateStore()
        state = store.load()
        if state is None:
            console.print("no tunnel is up")
            return
        if not is_root():
            raise TunnelError("taking the tunnel down needs root: sudo nodus down")
        await tear_down(state)
        store.clear()
        console.print(f"tunnel {state.interface} to node {state.node_id} is down")

    run(main)
