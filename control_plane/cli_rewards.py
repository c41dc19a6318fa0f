"""`nodus rewards`: an operator's reward commands.

- `show`: what the control plane says the address has earned, claimed and can claim;
- `claim`: fetches the Merkle proof from the control plane, checks it against the chain's current
  root, sends `RewardDistributor.claim` with the user's key and shows what arrived;
- `history`: the address's Claimed events and every epoch's fate, read from the chain;
- `verify <epoch>`: trusts nothing but the chain: fetches the epoch's published data, recomputes
  the leaves' Merkle root and the data's keccak256, and compares them with what the oracle put
  on-chain (RootProposed / RootAccepted / RootRevoked). Exit 0 "verified", or 1 with each
  difference.

Published data (GET /v1/epochs/{n}/data): a JSON document whose exact bytes hash to the on-chain
dataHash; this command reads its `leaves`, `[{"account": "0x..", "amount": "<wei, decimal>"}]`
(cumulative amounts), and its `epoch` and `root` when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import httpx
import typer
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from rich.markup import escape
from rich.table import Table
from web3.types import EventData

from control_plane.cli_rewards_recompute import Check, parse_leaves, recompute
from control_plane.cli_rewards_recompute import parse_wei as _wei
from control_plane.cli_support import (
    DEFAULT_API_URL,
    DEFAULT_RPC_URL,
    ApiUrlOption,
    Chain,
    CliError,
    DeploymentsDirOption,
    KeyFileOption,
    RpcUrlOption,
    UsageError,
    connect,
    console,
    err_console,
    events_in,
    format_nds,
    format_time,
    get_logs,
    hex0x,
    load_account,
    parse_address,
    rpc,
    run,
    send,
    short_hex,
)
from control_plane.paths import DEFAULT_DEPLOYMENTS_DIR
from control_plane.rewards.formula.merkle import RewardTree

rewards_app = typer.Typer(
    name="rewards",
    help="Operator rewards: show, claim, history, verify an epoch against the chain, and watch "
    "proposed roots.",
    no_args_is_help=True,
)

API_TIMEOUT_S: Final = 30.0

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        parser=parse_address,
        metavar="ADDRESS",
        help="The operator (default: the address of your key).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


# --- the control plane's API --------------------------------------------------------------


class ApiNotFound(CliError):
    pass


async def api_get(api_url: str, path: str) -> httpx.Response:
    """GET `path` from the control plane; errors become CliErrors with the API's message."""
    url = api_url.rstrip("/") + path
    try:
        async with httpx.AsyncClient(timeout=API_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the Nodus API at {api_url}: {exc or type(exc).__name__}"
        ) from None
    if response.is_success:
        return response
    message = _api_message(response)
    if response.status_code == 404:
        raise ApiNotFound(f"{url}: not found ({message})")
    raise CliError(f"the Nodus API answered {response.status_code} for {url}: {message}")


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:200]


def _bytes32(value: object, field: str) -> bytes:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        raise ValueError(f"{field} is not a 0x-prefixed bytes32: {value!r}")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True, slots=True)
class Rewards:
    """GET /v1/rewards/{address}."""

    cumulative: int
    claimed: int
    claimable: int
    epoch: int | None
    proof: list[bytes]

    @classmethod
    def parse(cls, body: object) -> Rewards:
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        proof = body.get("proof") or []
        if not isinstance(proof, list):
            raise ValueError("proof is not a list")
        epoch = body.get("epoch")
        return cls(
            cumulative=_wei(body.get("cumulative", "0"), "cumulative"),
            claimed=_wei(body.get("claimed", "0"), "claimed"),
            claimable=_wei(body.get("claimable", "0"), "claimable"),
            epoch=None if epoch is None else int(epoch),
            proof=[_bytes32(p, "proof") for p in proof],
        )


async def fetch_rewards(api_url: str, address: str) -> Rewards | None:
    """The API's view of `address`, or None when it has never earned anything."""
    try:
        response = await api_get(api_url, f"/v1/rewards/{address}")
    except ApiNotFound:
        return None
    try:
        return Rewards.parse(response.json())
    except ValueError as exc:
        raise CliError(f"the Nodus API's rewards answer is malformed: {exc}") from None


def _address(address: str | None, key_file: Path | None) -> ChecksumAddress:
    if address:
        return to_checksum_address(address)
    try:
        return load_account(key_file).address
    except UsageError:
        raise UsageError("pass --address, or your key (--key-file or NODUS_PRIVATE_KEY)") from None


# --- show ---------------------------------------------------------------------------------


@rewards_app.command()
def show(
    address: AddressOption = None,
    key_file: KeyFileOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    as_json: JsonOption = False,
) -> None:
    """What the address has earned (cumulative), claimed, and can claim now."""

    async def main() -> tuple[ChecksumAddress, Rewards | None, int | None]:
        who = _address(address, key_file)
        view = await fetch_rewards(api_url, who)
        on_chain: int | None = None
        try:  # the chain is the authority on what was claimed; the API may lag a few blocks
            chain = await connect(rpc_url, deployments_dir)
            rewards = chain.contract("RewardDistributor")
            on_chain = int(await rpc(chain, rewards.functions.claimed(who).call()))
        except CliError as exc:
            err_console.print(f"[yellow]warning:[/yellow] {escape(exc.message)}")
        return who, view, on_chain

    who, view, on_chain = run(main)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "address": who,
                    "cumulative": str(view.cumulative if view else 0),
                    "claimed": str(view.claimed if view else 0),
                    "claimable": str(view.claimable if view else 0),
                    "epoch": view.epoch if view else None,
                    "claimed_on_chain": None if on_chain is None else str(on_chain),
                }
            )
        )
        return
    if view is None:
        console.print(f"{who} has no rewards yet")
        return
    table = Table(title=f"rewards of {who}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("epoch", str(view.epoch) if view.epoch is not None else "-")
    table.add_row("earned (cumulative)", format_nds(view.cumulative))
    table.add_row("claimed", format_nds(view.claimed))
    if on_chain is not None and on_chain != view.claimed:
        table.add_row("claimed (on-chain)", format_nds(on_chain))
    table.add_row("claimable", f"[green]{format_nds(view.claimable)}[/green]")
    console.print(table)
    if view.claimable:
        console.print("claim it with: nodus rewards claim")


# --- claim --------------------------------------------------------------------------------


@rewards_app.command()
def claim(
    address: AddressOption = None,
    key_file: KeyFileOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
) -> None:
    """Claim everything unclaimed, with the Merkle proof from the API.

    Sent with your key; the NDS always go to the operator (--address, by default your own)."""

    async def main() -> None:
        chain = await connect(rpc_url, deployments_dir)
        account = load_account(key_file)
        who = to_checksum_address(address) if address else account.address
        view = await fetch_rewards(api_url, who)
        if view is None or view.cumulative == 0:
            console.print(f"nothing to claim: {who} has no rewards yet")
            return
        rewards = chain.contract("RewardDistributor")
        token = chain.contract("NDSToken")
        root = bytes(await rpc(chain, rewards.functions.currentRoot().call()))
        root_epoch = int(await rpc(chain, rewards.functions.rootEpoch().call()))
        checker = RewardTree(root=root, proofs={}, amounts={})
        if not checker.verify(who, view.cumulative, view.proof):
            raise CliError(
                f"the API's proof (epoch {view.epoch}) does not match the chain's current root "
                f"(epoch {root_epoch}); if that epoch is still in its challenge window, claim "
                "after it is accepted"
            )
        already = int(await rpc(chain, rewards.functions.claimed(who).call()))
        if view.cumulative <= already:
            console.print(
                f"nothing to claim: {who} has already claimed {format_nds(already)} of "
                f"{format_nds(view.cumulative)} earned"
            )
            return
        before = int(await rpc(chain, token.functions.balanceOf(who).call()))
        receipt = await send(
            chain,
            account,
            rewards.functions.claim(who, view.cumulative, view.proof),
            f"claim {format_nds(view.cumulative - already)}",
        )
        claimed = events_in(receipt, rewards.events.Claimed())
        amount = int(claimed[0]["args"]["amount"]) if claimed else view.cumulative - already
        after = int(await rpc(chain, token.functions.balanceOf(who).call()))
        console.print(
            f"claimed {format_nds(amount)} for {who} (epoch {root_epoch}; earned in total "
            f"{format_nds(view.cumulative)}); balance {format_nds(before)} -> {format_nds(after)}"
        )

    run(main)


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


@rewards_app.command()
def history(
    address: AddressOption = None,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    as_json: JsonOption = False,
) -> None:
    """The address's claims and every reward epoch, read from the chain."""

    async def main() -> tuple[ChecksumAddress, list[ClaimRecord], list[EpochRecord], int]:
        who = _address(address, key_file)
        chain = await connect(rpc_url, deployments_dir)
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
    if as_json:
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


@rewards_app.command()
def verify(
    epoch: Annotated[int, typer.Argument(min=1, metavar="EPOCH")],
    api_url: ApiUrlOption = DEFAULT_API_URL,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    as_json: JsonOption = False,
) -> None:
    """Check EPOCH's published data against the chain, recomputing it from its inputs.

    The keccak256 of the published bytes must be the on-chain dataHash and the Merkle root of its
    leaves the on-chain root; scores are recomputed from each node's metrics, then the budget,
    the allocation and the cumulative leaves, and the previous leaves are checked against the last
    accepted epoch's. Exit 0 when everything matches, 1 with what differs."""

    async def main() -> tuple[Verification, int]:
        chain = await connect(rpc_url, deployments_dir)
        result = await verify_epoch(chain, api_url, epoch)
        return result, await chain.now()

    result, now = run(main)
    failed = [c for c in result.checks if not c.ok]
    if as_json:
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
            raise typer.Exit(code=1)
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
        raise typer.Exit(code=1)
    if not result.recomputed:
        console.print(
            f"epoch {epoch}: verified (root and data hash only: the data carries no scores to "
            "recompute)"
        )
        return
    console.print(f"epoch {epoch}: verified")
