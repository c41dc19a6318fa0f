"""`nodus rewards verify <epoch>`: trusts nothing but the chain. It fetches the epoch's published
data, recomputes the leaves' Merkle root and the data's keccak256, and compares them with what the
oracle put on-chain (RootProposed / RootAccepted / RootRevoked). Exit 0 "verified", or 1 with each
difference.

Published data (GET /v1/epochs/{n}/data): a JSON document whose exact bytes hash to the on-chain
dataHash; this command reads its `leaves`, `[{"account": "0x..", "amount": "<wei, decimal>"}]`
(cumulative amounts), and its `epoch` and `root` when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from nodus_cli.rewards.api import (
    api_get,
)
from nodus_cli.rewards.history import EpochRecord, epoch_records
from nodus_cli.rewards.recompute import Check, parse_leaves, recompute
from nodus_cli.support.chain import Chain, connect, run
from nodus_cli.support.exits import ExitCode
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    CliError,
    console,
    err_console,
    format_nds,
    format_time,
    hex0x,
)

# --- verify -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    record: EpochRecord
    checks: list[Check]
    recomputed: bool  # False: the data carries only leaves, so only root and hash were checked


async def _published(api_url: str, epoch: int) -> bytes:
    return (await api_get(api_url, f"/v1/epochs/{epoch}/data")).content


async def verify_epoch(chain: Chain, api_url: str, epoch: int) -> Verification:
    """Every check of `epoch`'s published data against the chain and against recomputation."""
    from eth_utils.crypto import keccak

    from control_plane.rewards.formula.merkle import RewardTree

    records = await epoch_records(chain)
    matching = [r for r in records if r.epoch == epoch]
    if not matching:
        raise CliError(f"epoch {epoch} was never proposed on chain {chain.chain_id}")
    record = matching[-1]
    raw = await _published(api_url, epoch)
    data_hash = keccak(raw)
    checks = [
        Check(
            "data hash (keccak256 of the published bytes)",
            hex0x(data_hash),
            hex0x(record.data_hash),
            data_hash == record.data_hash,
        ),
    ]
    try:
        data = json.loads(raw)
        leaves = parse_leaves(data)
        tree = RewardTree.build(leaves.items())
    except ValueError as exc:
        checks.append(Check("published data", f"malformed: {exc}", "JSON with leaves", False))
        return Verification(record, checks, recomputed=False)
    total = sum(leaves.values())
    checks.append(
        Check(
            "Merkle root of the leaves",
            hex0x(tree.root),
            hex0x(record.root),
            tree.root == record.root,
        )
    )
    checks.append(
        Check(
            "sum of the leaves",
            format_nds(total),
            format_nds(record.total_cumulative),
            total == record.total_cumulative,
        )
    )
    for key, expected in (("epoch", epoch), ("chain_id", chain.chain_id)):
        if key in data:
            checks.append(
                Check(
                    f"{key} in the data",
                    str(data[key]),
                    str(expected),
                    str(data[key]) == str(expected),
                )
            )
    if isinstance(data.get("root"), str):
        root = data["root"].lower()
        checks.append(
            Check("root stated in the data", root, hex0x(record.root), root == hex0x(record.root))
        )
    if "total_cumulative" in data:
        checks.append(
            Check(
                "total stated in the data",
                str(data["total_cumulative"]),
                str(record.total_cumulative),
                str(data["total_cumulative"]) == str(record.total_cumulative),
            )
        )
    if not all(k in data for k in ("formula", "nodes", "budget", "allocations", "previous_leaves")):
        return Verification(record, checks, recomputed=False)

    previous_accepted: dict[str, int] = {}
    before = [r for r in records if r.status == "accepted" and r.epoch < epoch]
    if before:
        prior = before[-1]
        prior_raw = await _published(api_url, prior.epoch)
        prior_ok = keccak(prior_raw) == prior.data_hash
        checks.append(
            Check(
                f"data of epoch {prior.epoch} (the last accepted before) matches its hash",
                hex0x(keccak(prior_raw)),
                hex0x(prior.data_hash),
                prior_ok,
            )
        )
        try:
            previous_accepted = parse_leaves(json.loads(prior_raw))
        except ValueError as exc:
            checks.append(Check(f"data of epoch {prior.epoch}", f"malformed: {exc}", "-", False))
            return Verification(record, checks, recomputed=False)
    try:
        checks.extend(recompute(data, previous_accepted))
    except (KeyError, TypeError, ValueError) as exc:
        checks.append(
            Check(
                "scores and allocations",
                f"cannot recompute: {type(exc).__name__} {exc}",
                "-",
                False,
            )
        )
    return Verification(record, checks, recomputed=True)


@shared_options("api_url", "rpc_url", "deployments_dir", "as_json")
def verify(
    epoch: Annotated[int, typer.Argument(min=1, metavar="EPOCH")],
    *,
    options: Options,
) -> None:
    """Check EPOCH's published data against the chain, recomputing it from its inputs.

    The keccak256 of the published bytes must be the on-chain dataHash and the Merkle root of its
    leaves the on-chain root; scores are recomputed from each node's metrics, then the budget,
    the allocation and the cumulative leaves, and the previous leaves are checked against the last
    accepted epoch's. Exit 0 when everything matches, 1 with what differs."""

    async def main() -> tuple[Verification, int]:
        chain = await connect(options.rpc_url, options.deployments_dir)
        result = await verify_epoch(chain, options.api_url, epoch)
        return result, await chain.now()

    result, now = run(main)
    failed = [c for c in result.checks if not c.ok]
    if options.as_json:
        console.print_json(
            json.dumps(
                {
                    "epoch": epoch,
                    "status": result.record.status,
                    "verified": not failed,
                    "recomputed": result.recomputed,
                    "checks": [
                        {"check": c.what, "published": c.found, "expected": c.expected, "ok": c.ok}
                        for c in result.checks
                    ],
                }
            )
        )
        if failed:
            raise typer.Exit(code=ExitCode.REFUSED)
        return
    table = Table(title=f"epoch {epoch}")
    table.add_column("check")
    table.add_column("published data", overflow="fold")
    table.add_column("chain / recomputed", overflow="fold")
    table.add_column("", justify="center")
    for check in result.checks:
        mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
        table.add_row(escape(check.what), escape(check.found), escape(check.expected), mark)
    console.print(table)
    status = result.record.status
    if status == "pending":
        status = f"pending (challenge window until {format_time(result.record.valid_at, now)})"
    console.print(f"on-chain status: {status}")
    if failed:
        for check in failed:
            err_console.print(
                f"[red]differs:[/red] {escape(check.what)}: published {escape(check.found)}, "
                f"expected {escape(check.expected)}"
            )
        console.print(f"epoch {epoch}: NOT verified")
        raise typer.Exit(code=ExitCode.REFUSED)
    if not result.recomputed:
        console.print(
            f"epoch {epoch}: verified (root and data hash only: the data carries no scores to "
            "recompute)"
        )
        return
    console.print(f"epoch {epoch}: verified")
