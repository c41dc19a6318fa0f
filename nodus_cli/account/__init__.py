"""`nodus account`: the subscriber's wallet, kept as an encrypted JSON keystore (the standard
Ethereum format, eth-account's `Account.encrypt`) under the XDG config dir.

- `new`: a fresh key, encrypted with a password, written with mode 0600;
- `import`: an existing key (`--key-file`, NODUS_PRIVATE_KEY or a hidden prompt), the same way;
- `show`: the address and its ETH and NDS balances.
"""

from __future__ import annotations

import typer

from nodus_cli.account.keystore import import_key, new, show

account_app = typer.Typer(
    name="account",
    help="Your wallet: create or import an encrypted keystore, show its address and balances.",
    no_args_is_help=True,
)
account_app.command()(new)
account_app.command(name="import")(import_key)
account_app.command()(show)
