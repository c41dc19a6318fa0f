"""`nodus login`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nodus_cli.support.chain import run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import console, format_time
from nodus_cli.support.session import ApiSession

ForceOption = Annotated[
    bool, typer.Option("--force", help="Sign in again even if the cached token is still valid.")
]


@shared_options("api_url", "key_file", "as_json")
def login(force: ForceOption = False, *, options: Options) -> None:
    """Sign in to the control plane with your wallet (Sign-In with Ethereum).

    The token is cached (mode 0600 under $XDG_CONFIG_HOME/nodus/). Every command that needs
    the API does this by itself when the token is missing or expired; run it to check your
    setup.

    Examples:

        nodus login

        nodus login --api https://api.nodus.example --force
    """

    async def main() -> None:
        async with ApiSession.open(options.api_url, options.key_file) as api:
            token = await api.login(force=force)
            me = await api.get("/v1/auth/me")
        roles = [str(role) for role in me.get("roles", [])]
        if options.as_json:
            body = {
                "address": api.address,
                "api_url": api.api_url,
                "roles": roles,
                "token_expires_at": int(token.expires_at),
            }
            console.print_json(json.dumps(body))
            return
        console.print(f"signed in to {api.api_url} as {api.address} ({', '.join(roles)})")
        console.print(f"token valid until {format_time(int(token.expires_at))}")

    run(main)
