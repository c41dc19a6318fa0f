"""Paying when needed: an active subscription is left alone; otherwise `--subscribe MONTHS` pays
on-chain (approve, then `subscribe` with the price just read as the bound) and waits for the API
to see it; without it, exit 3 with the exact command to run."""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from nodus_cli.connect.api import SubscriberApi
from nodus_cli.support.chain import connect, rpc, send
from nodus_cli.support.exits import CliError, PaymentNeeded, Unreachable
from nodus_cli.support.output import err_console, format_nds

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

API_SEES_PAYMENT_S: Final = 60.0


def command_with_subscribe(argv: list[str], months: int = 1) -> str:
    """The user's own `nodus up ...` with `--subscribe N` added."""
    after = argv[argv.index("up") + 1 :] if "up" in argv else []
    return shlex.join(["nodus", "up", *after, "--subscribe", str(months)])


async def ensure_paid(
    api: SubscriberApi,
    account: LocalAccount,
    months: int | None,
    rpc_url: str,
    deployments_dir: Path,
) -> str | None:
    """The subscription's expiry (ISO text) once it is active."""
    current = await api.subscription()
    if current.get("active"):
        return str(current.get("expires_at"))
    if months is None:
        raise PaymentNeeded(
            f"wallet {account.address} has no active subscription; pay and connect with: "
            f"{command_with_subscribe(sys.argv)}",
            command_with_subscribe(sys.argv),
        )
    try:
        chain = await connect(rpc_url, deployments_dir)
    except CliError as exc:
        raise Unreachable(exc.message, exc.next_step) from None
    manager = chain.contract("SubscriptionManager")
    token = chain.contract("NDSToken")
    price = int(await rpc(chain, manager.functions.pricePerPeriod().call()))
    err_console.print(f"paying {months} x {format_nds(price)} for {account.address}")
    await send(chain, account, token.functions.approve(manager.address, price * months), "approve")
    await send(
        chain, account, manager.functions.subscribe(account.address, months, price), "subscribe"
    )
    started = time.monotonic()
    with err_console.status("waiting for the API to see the payment…"):
        while time.monotonic() - started < API_SEES_PAYMENT_S:
            current = await api.subscription()
            if current.get("active"):
                return str(current.get("expires_at"))
            await asyncio.sleep(0.5)
    raise Unreachable(f"the API did not see the payment within {API_SEES_PAYMENT_S:.0f} s")
