"""`nodus account new|import|show`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nodus_cli.support.chain import Chain, connect, rpc, run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    UsageError,
    console,
    err_console,
    format_eth,
    format_nds,
)
from nodus_cli.support.paths import default_keystore, write_private
from nodus_cli.support.wallet import (
    account_from_hex,
    address_of_key,
    keystore_password,
    load_account,
)

if TYPE_CHECKING:  # eth_account loads only when a command runs
    from eth_account.signers.local import LocalAccount

ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace an existing keystore (its key is lost).")
]


def _write_keystore(account: LocalAccount, force: bool) -> Path:
    path = default_keystore()
    if path.exists() and not force:
        raise UsageError(
            f"a keystore already exists at {path} (address {address_of_key(path)})",
            f"keep it, or move it away first (replacing it loses its key): mv {path} {path}.old",
        )
    password = keystore_password(f"the new keystore {path}", confirm=True)
    if not password:
        raise UsageError("the keystore password is empty", "choose a non-empty password")
    from eth_account import Account

    keystore: dict[str, Any] = Account.encrypt(account.key, password)
    write_private(path, json.dumps(keystore))
    return path


def _written(account: LocalAccount, path: Path, as_json: bool, note: str) -> None:
    if as_json:
        console.print_json(json.dumps({"address": account.address, "keystore": str(path)}))
    else:
        console.print(f"address: {account.address}")
    err_console.print(f"[green]✓[/green] {note}")


@shared_options("as_json", json_help="Print the address and the keystore's path as JSON.")
def new(force: ForceOption = False, *, options: Options) -> None:
    """Create a new wallet: a fresh key in an encrypted keystore.

    The keystore is encrypted with a password (prompted twice, or NODUS_KEYSTORE_PASSWORD)
    into $XDG_CONFIG_HOME/nodus/keystore.json (mode 0600).

    Every other command signs with it unless --key-file or NODUS_PRIVATE_KEY says otherwise.

    Examples:

        nodus account new

        NODUS_KEYSTORE_PASSWORD=... nodus account new
    """

    async def main() -> None:
        from eth_account import Account

        account: LocalAccount = Account.create()
        path = _write_keystore(account, force)
        _written(
            account,
            path,
            options.as_json,
            f"new keystore {path}; fund this address with ETH (gas) and NDS, then: nodus plan",
        )

    run(main)


@shared_options(
    "key_file", "as_json", json_help="Print the address and the keystore's path as JSON."
)
def import_key(force: ForceOption = False, *, options: Options) -> None:
    """Import an existing key into the encrypted keystore.

    From --key-file (a 0600 hex key file or another keystore), NODUS_PRIVATE_KEY, or else a
    hidden prompt.

    Examples:

        nodus account import --key-file ./key.hex

        nodus account import          (asks for the hex private key)
    """

    async def main() -> None:
        if options.key_file is not None or os.environ.get("NODUS_PRIVATE_KEY"):
            account = load_account(options.key_file)
        elif sys.stdin.isatty():
            typed: str = typer.prompt("Private key (hex)", hide_input=True)
            account = account_from_hex(typed, "the key you typed")
        else:
            raise UsageError("no key to import", "pass --key-file PATH, or set NODUS_PRIVATE_KEY")
        path = _write_keystore(account, force)
        _written(account, path, options.as_json, f"imported into {path}")

    run(main)


@shared_options("rpc_url", "deployments_dir", "key_file", "as_json")
def show(*, options: Options) -> None:
    """Show your address and its ETH and NDS balances (no password needed).

    Examples:

        nodus account show

        nodus account show --json --rpc-url http://127.0.0.1:8545
    """

    async def main() -> None:
        address = address_of_key(options.key_file)
        chain: Chain = await connect(options.rpc_url, options.deployments_dir)
        eth = await rpc(chain, chain.w3.eth.get_balance(address))
        nds = await rpc(chain, chain.contract("NDSToken").functions.balanceOf(address).call())
        if options.as_json:
            body = {"address": address, "eth_wei": str(eth), "nds_wei": str(nds)}
            console.print_json(json.dumps(body))
            return
        console.print(f"address: {address}")
        console.print(f"ETH:     {format_eth(int(eth))}")
        console.print(f"NDS:     {format_nds(int(nds))}")

    run(main)
