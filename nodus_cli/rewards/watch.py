"""`nodus rewards watch`: anyone's watchdog over the oracle's proposed reward roots.

It follows the pending root (each RootProposed stays pending for the whole challenge window),
recomputes it from the epoch's published data exactly as `nodus rewards verify` does
(`verify_epoch`), and on a mismatch either revokes it with `revokeEpoch(epoch, root)`, when its
key holds the RewardDistributor's GUARDIAN_ROLE, or prints an ALERT line and exits 1. `--once`
checks the current pending root and exits (for cron and tests).

Exit codes: 0 nothing wrong (or a bad root revoked), 1 an alert (a bad root nobody revoked here,
or data that cannot be checked), 2 bad options or configuration.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.markup import escape

from nodus_cli.rewards.verify import verify_epoch
from nodus_cli.support.chain import Chain, connect, rpc, run, send
from nodus_cli.support.exits import ExitCode
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import CliError, console, err_console, format_time, hex0x
from nodus_cli.support.wallet import load_account

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DEFAULT_INTERVAL_S: Final = 30


@dataclass(frozen=True, slots=True)
class PendingCheck:
    """What the watcher found about one pending root."""

    epoch: int
    root: bytes
    valid_at: int
    failures: list[str]  # empty: the root is what the published data says
    checkable: bool  # False: the published data could not be fetched


async def pending_check(chain: Chain, api_url: str) -> PendingCheck | None:
    """The pending root checked against its epoch's published data; None when none is pending."""
    rewards = chain.contract("RewardDistributor")
    root, _data_hash, _total, epoch, valid_at = await rpc(
        chain, rewards.functions.pendingRoot().call()
    )
    if int(epoch) == 0:
        return None
    root = bytes(root)
    try:
        verification = await verify_epoch(chain, api_url, int(epoch))
    except CliError as exc:
        return PendingCheck(int(epoch), root, int(valid_at), [exc.message], checkable=False)
    failures = [
        f"{check.what}: published {check.found}, expected {check.expected}"
        for check in verification.checks
        if not check.ok
    ]
    if verification.record.root != root:
        failures.append(f"RootProposed named root {hex0x(verification.record.root)}")
    return PendingCheck(int(epoch), root, int(valid_at), failures, checkable=True)


async def is_guardian(chain: Chain, account: LocalAccount) -> bool:
    rewards = chain.contract("RewardDistributor")
    role = await rpc(chain, rewards.functions.GUARDIAN_ROLE().call())
    return bool(await rpc(chain, rewards.functions.hasRole(role, account.address).call()))


def _alert(found: PendingCheck, why: str, now: int) -> None:
    err_console.print(
        f"[red]ALERT:[/red] epoch {found.epoch} root {hex0x(found.root)} {escape(why)}; "
        f"anyone may accept it {format_time(found.valid_at, now)}: a guardian must revoke it "
        f"before (revokeEpoch({found.epoch}, {hex0x(found.root)}))",
        soft_wrap=True,
    )


async def _handle(chain: Chain, found: PendingCheck, guardian: LocalAccount | None) -> bool:
    """Acts on one checked root; True when the watcher must raise the alarm (exit 1)."""
    now = await chain.now()
    if not found.checkable:
        _alert(found, f"cannot be checked: {found.failures[0]}", now)
        return True
    if not found.failures:
        console.print(
            f"epoch {found.epoch} root {hex0x(found.root)}: verified against its published data"
        )
        return False
    reasons = "; ".join(found.failures[:3])
    if guardian is None:
        _alert(found, f"does NOT match its published data ({reasons})", now)
        return True
    rewards = chain.contract("RewardDistributor")
    await send(
        chain,
        guardian,
        rewards.functions.revokeEpoch(found.epoch, found.root),
        f"revoke epoch {found.epoch}",
    )
    console.print(
        f"REVOKED epoch {found.epoch} root {hex0x(found.root)}: it does not match its published "
        f"data ({escape(reasons)})",
        soft_wrap=True,
    )
    return False


@shared_options("key_file", "api_url", "rpc_url", "deployments_dir")
def watch(
    once: Annotated[
        bool, typer.Option("--once", help="Check the current pending root and exit.")
    ] = False,
    interval: Annotated[
        int, typer.Option("--interval", min=1, help="Seconds between checks of the chain.")
    ] = DEFAULT_INTERVAL_S,
    *,
    options: Options,
) -> None:
    """Watch proposed reward roots and stop a wrong one before it can be accepted.

    Each pending root is recomputed from its epoch's published data, as `verify` does. A root
    that differs is revoked (revokeEpoch) when your key (--key-file or NODUS_PRIVATE_KEY) holds
    the guardian role; without a guardian key, an ALERT line is printed and the exit code is 1.
    Data that cannot be fetched is an alert too. Anyone may run it, with or without a key."""

    async def main() -> bool:
        chain = await connect(options.rpc_url, options.deployments_dir)
        guardian = await _guardian_key(chain, options.key_file)
        checked: set[tuple[int, bytes]] = set()
        while True:
            found = await pending_check(chain, options.api_url)
            if found is None:
                if once:
                    console.print("no pending root")
                    return False
            elif (found.epoch, found.root) not in checked:
                if await _handle(chain, found, guardian):
                    return True
                if found.checkable:
                    checked.add((found.epoch, found.root))
            if once:
                return False
            await asyncio.sleep(interval)

    if run(main):
        raise typer.Exit(code=ExitCode.REFUSED)


async def _guardian_key(chain: Chain, key_file: Path | None) -> LocalAccount | None:
    """The key to revoke with, if one is given; a key without the guardian role only watches."""
    if key_file is None and not os.environ.get("NODUS_PRIVATE_KEY"):
        return None  # no key at all: watch and alert
    account = load_account(key_file)  # a key given but unreadable is an error
    if await is_guardian(chain, account):
        console.print(f"watching as guardian {account.address}: a wrong root is revoked")
        return account
    err_console.print(
        f"[yellow]note:[/yellow] {account.address} does not hold GUARDIAN_ROLE: a wrong root "
        "raises an alert instead of being revoked"
    )
    return None
