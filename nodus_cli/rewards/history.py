"""`nodus rewards history`: an address's Claimed events and every epoch's fate, read from the
chain (RootProposed / RootAccepted / RootRevoked)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table

from nodus_cli.rewards.api import (
    AddressOption,
    address_of,
)
from nodus_cli.support.chain import Chain, connect, get_logs, rpc, run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    console,
    format_nds,
    format_time,
    hex0x,
    short_hex,
)

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress
    from web3.types import EventData

# --- history ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EpochRecord:
    epoch: int
    status: str  # pending | accepted | revoked
    root: bytes
    total_cumulative: int
    data_hash: bytes
    valid_at: int
    proposed_block: int


async def epoch_records(chain: Chain, epoch: int | None = None) -> list[EpochRecord]:
    """Every proposed epoch (or just `epoch`) and its fate, from the RewardDistributor's events."""
    rewards = chain.contract("RewardDistributor")
    latest = int(await rpc(chain, chain.w3.eth.block_number))
    start = chain.deployment.start_block
    filters = None if epoch is None else {"epoch": epoch}
    proposed, accepted, revoked, withdrawn = [
        await get_logs(chain, event(), from_block=start, to_block=latest, argument_filters=filters)
        for event in (
            rewards.events.RootProposed,
            rewards.events.RootAccepted,
            rewards.events.RootRevoked,
            rewards.events.RootWithdrawn,  # the oracle withdrew its own root
        )
    ]
    fate = {int(e["args"]["epoch"]): "accepted" for e in accepted}
    fate.update({int(e["args"]["epoch"]): "revoked" for e in (*revoked, *withdrawn)})
    return [
        EpochRecord(
            epoch=int(e["args"]["epoch"]),
            status=fate.get(int(e["args"]["epoch"]), "pending"),
            root=bytes(e["args"]["root"]),
            total_cumulative=int(e["args"]["totalCumulative"]),
            data_hash=bytes(e["args"]["dataHash"]),
            valid_at=int(e["args"]["validAt"]),
            proposed_block=int(e["blockNumber"]),
        )
        for e in proposed
    ]


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    block: int
    timestamp: int
    amount: int
    cumulative: int
    epoch: int  # the epoch whose root the claim was proven against
    tx_hash: str


def _position(event: EventData) -> tuple[int, int]:
    return int(event["blockNumber"]), int(event["logIndex"])


@shared_options("key_file", "rpc_url", "deployments_dir", "as_json")
def history(
    address: AddressOption = None,
    *,
    options: Options,
) -> None:
    """The address's claims and every reward epoch, read from the chain."""

    async def main() -> tuple[ChecksumAddress, list[ClaimRecord], list[EpochRecord], int]:
        who = address_of(address, options.key_file)
        chain = await connect(options.rpc_url, options.deployments_dir)
        rewards = chain.contract("RewardDistributor")
        latest = int(await rpc(chain, chain.w3.eth.block_number))
        start = chain.deployment.start_block
        claims = await get_logs(
            chain,
            rewards.events.Claimed(),
            from_block=start,
            to_block=latest,
            argument_filters={"account": who},
        )
        accepted = await get_logs(
            chain, rewards.events.RootAccepted(), from_block=start, to_block=latest
        )
        records = []
        for event in claims:
            before = [a for a in accepted if _position(a) < _position(event)]
            block = await rpc(chain, chain.w3.eth.get_block(int(event["blockNumber"])))
            records.append(
                ClaimRecord(
                    block=int(event["blockNumber"]),
                    timestamp=int(block["timestamp"]),
                    amount=int(event["args"]["amount"]),
                    cumulative=int(event["args"]["cumulativeAmount"]),
                    epoch=int(before[-1]["args"]["epoch"]) if before else 0,
                    tx_hash=hex0x(event["transactionHash"]),
                )
            )
        return who, records, await epoch_records(chain), await chain.now()

    who, claims, epochs, now = run(main)
    if options.as_json:
        console.print_json(
            json.dumps(
                {
                    "address": who,
                    "claims": [
                        {
                            "block": c.block,
                            "timestamp": c.timestamp,
                            "amount": str(c.amount),
                            "cumulative": str(c.cumulative),
                            "epoch": c.epoch,
                            "tx": c.tx_hash,
                        }
                        for c in claims
                    ],
                    "epochs": [
                        {
                            "epoch": e.epoch,
                            "status": e.status,
                            "root": hex0x(e.root),
                            "total_cumulative": str(e.total_cumulative),
                            "data_hash": hex0x(e.data_hash),
                            "valid_at": e.valid_at,
                        }
                        for e in epochs
                    ],
                }
            )
        )
        return
    claims_table = Table(title=f"claims of {who}")
    for column in ("time", "epoch", "amount", "cumulative", "tx"):
        claims_table.add_column(
            column,
            justify="right" if column in ("amount", "cumulative") else "left",
            overflow="fold",
        )
    for c in claims:
        claims_table.add_row(
            format_time(c.timestamp),
            str(c.epoch),
            format_nds(c.amount),
            format_nds(c.cumulative),
            short_hex(c.tx_hash),
        )
    console.print(claims_table if claims else f"{who} has not claimed anything yet")
    epochs_table = Table(title="reward epochs")
    for column in ("epoch", "status", "total (cumulative)", "root", "data hash"):
        epochs_table.add_column(column, overflow="fold")
    styles = {"accepted": "green", "revoked": "red", "pending": "yellow"}
    for e in epochs:
        status = e.status
        if status == "pending":
            status = f"pending until {format_time(e.valid_at, now)}"
        epochs_table.add_row(
            str(e.epoch),
            f"[{styles[e.status]}]{status}[/{styles[e.status]}]",
            format_nds(e.total_cumulative),
            short_hex(e.root),
            short_hex(e.data_hash),
        )
    console.print(epochs_table if epochs else "no reward epoch has been proposed yet")
