"""`nodus node register`: stake and register a node on-chain, register it with the control plane,
wait until the control plane has indexed it, and print the agent's next step.

Each step is detected before it is taken, so a run that stopped anywhere resumes where it
stopped: an allowance that covers the stake skips `approve`; a node already registered by this
operator with this salt skips `register`; a node the API already knows skips POST /v1/nodes.
NDSToken has no ERC-2612 permit and NodeRegistry takes no permit signature, so the stake is
approved with a transaction of its own. Every input is checked before the first transaction."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.markup import escape

from nodus_cli.node.inputs import (
    CountryOption,
    EndpointOption,
    ProtocolsOption,
    parse_wireguard_key,
)
from nodus_cli.node.registry import read_node
from nodus_cli.support.chain import Chain, connect, rpc, run, send
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import CliError, console, err_console, format_nds
from nodus_cli.support.parsing import parse_address, parse_bytes32, parse_nds
from nodus_cli.support.session import ApiNotFound, ApiSession

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

POLL_S: Final = 1.0
# What POST /v1/nodes answers while the API's chain reader has not seen the registration yet.
NOT_YET_ON_CHAIN: Final = ("not registered in NodeRegistry", "not Active in NodeRegistry")


def _done(text: str) -> None:
    err_console.print(f"[green]✓[/green] {escape(text)}")


def _skipped(text: str) -> None:
    err_console.print(f"[cyan]↷[/cyan] {escape(text)}")


@shared_options("key_file", "rpc_url", "deployments_dir", "api_url", "as_json")
def register(
    endpoint: EndpointOption = None,
    country: CountryOption = None,
    protocols: ProtocolsOption = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            parser=parse_address,
            metavar="ADDRESS",
            help="The node agent's address, printed by `nodus-agent init` on the node host.",
        ),
    ] = None,
    salt: Annotated[
        str | None,
        typer.Option(
            "--salt",
            metavar="HEX",
            help="0x + 64 hex digits, printed by `nodus-agent init` (the node id is "
            "keccak(operator, salt)). Default: a fresh one, printed first so a re-run can resume.",
        ),
    ] = None,
    wireguard_key: Annotated[
        str | None,
        typer.Option(
            "--wireguard-key",
            "--wireguard-public-key",
            parser=parse_wireguard_key,
            metavar="KEY",
            help="The node's WireGuard public key, printed by `nodus-agent init`.",
        ),
    ] = None,
    stake: Annotated[
        str | None,
        typer.Option(
            "--stake",
            metavar="NDS",
            help="NDS to stake (default: NodeRegistry's minimum stake).",
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, max=3600, help="Seconds to wait for the control plane to index it."
        ),
    ] = 120.0,
    *,
    options: Options,
) -> None:
    """Register a node: stake NDS in NodeRegistry, register it with the control plane, and wait
    until the control plane has indexed it. Re-run it to resume after an interruption: each
    done step is detected and skipped.

    First, on the node host: nodus-agent init --operator YOUR_ADDRESS --endpoint HOST:PORT
    --country CC; it prints this command with --agent, --salt and --wireguard-key filled in.

    Example: nodus node register --endpoint vpn.example.net:51820 --country DE
    --protocols wireguard --agent 0xAgent... --salt 0x... --wireguard-key 'AbC...='
    --key-file ~/.nodus/operator.key
    """
    from eth_utils.address import to_checksum_address

    from control_plane.chain.contracts import node_id_of

    if endpoint is None or country is None or protocols is None:
        raise _usage("--endpoint, --country and --protocols are required")
    served = protocols.split(",")
    if agent is None:
        raise _usage(
            "--agent is required: run `nodus-agent init --operator YOUR_ADDRESS --endpoint "
            f"{endpoint} --country {country}` on the node host; it prints this command with "
            "--agent, --salt and --wireguard-key filled in"
        )
    if "wireguard" in served and wireguard_key is None:
        raise _usage(
            "--wireguard-key is required for a WireGuard node (nodus-agent init prints it)"
        )
    if "wireguard" not in served and wireguard_key is not None:
        raise _usage("--wireguard-key is only for a node that serves WireGuard")
    try:
        salt_bytes = parse_bytes32(salt) if salt is not None else secrets.token_bytes(32)
        stake_wei = parse_nds(stake) if stake is not None else None
    except typer.BadParameter as exc:
        raise _usage(exc.message) from None
    body: dict[str, Any] = {
        "protocols": served,
        "endpoint": endpoint,
        "country": country,
    }
    if wireguard_key is not None:
        body["wireguard_public_key"] = wireguard_key

    async def main() -> dict[str, Any]:
        async with ApiSession.open(options.api_url, options.key_file) as api:
            account = api.account
            node_id = node_id_of(account.address, salt_bytes)
            if salt is None:
                err_console.print(
                    f"new salt 0x{salt_bytes.hex()} (node id {node_id}); to resume an "
                    f"interrupted run, run again with --salt 0x{salt_bytes.hex()}"
                )
            chain = await connect(options.rpc_url, options.deployments_dir)
            await api.get("/readyz", auth=False)  # the API answers before anything is staked
            await _on_chain(chain, account, salt_bytes, to_checksum_address(agent), stake_wei)
            body["node_id"] = node_id
            known = await _with_api(api, node_id, body, wait)
            await _indexed(api, node_id, wait)
        return {"node_id": node_id, "operator": account.address, "api": known}

    outcome = run(main)
    node_id = outcome["node_id"]
    if options.as_json:
        console.print_json(data={**outcome, "next": _next_steps(node_id, salt is None)})
        return
    console.print(f"node id: {node_id}")
    console.print(_next_steps(node_id, salt is None))


def _usage(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=2)


def _next_steps(node_id: str, fresh_salt: bool) -> str:
    """What the node host does next (the steps `nodus-agent init` also lists)."""
    if fresh_salt:
        return (
            "next, on the node host: nodus-agent init --node-id "
            f"{node_id} --endpoint HOST:PORT --country CC; then here: nodus node set-agent "
            f"{node_id} AGENT_ADDRESS (the address init prints); then on the node host: "
            "nodus-agent pools, nodus-agent run, nodus-agent selftest"
        )
    return (
        "next, on the node host (where nodus-agent init wrote its config): "
        "nodus-agent pools --config CONFIG, then nodus-agent run --config CONFIG (or the "
        "nodus-agent systemd unit), then nodus-agent selftest --config CONFIG; "
        f"and here: nodus node status {node_id}"
    )


async def _on_chain(
    chain: Chain,
    account: LocalAccount,
    salt: bytes,
    agent: ChecksumAddress,
    stake: int | None,
) -> None:
    """approve + register, each skipped when already done."""
    from control_plane.chain.contracts import node_id_of

    registry = chain.contract("NodeRegistry")
    token = chain.contract("NDSToken")
    node_id = bytes.fromhex(node_id_of(account.address, salt)[2:])
    node = await read_node(chain, node_id)
    if node.status != "none":
        if node.operator != account.address:  # pragma: no cover - the id derives from the key
            raise CliError(f"node {node.shown_id} belongs to {node.operator}", exit_code=2)
        if node.status != "active":
            raise CliError(
                f"node {node.shown_id} is {node.status} on-chain; a node id is never reused: "
                "register a new node (a new salt)",
                exit_code=2,
            )
        _skipped(
            f"already registered on-chain (stake {format_nds(node.stake)}, agent {node.agent})"
        )
        if node.agent != agent:
            err_console.print(
                f"[yellow]warning:[/yellow] the node's agent on-chain is {node.agent}, not "
                f"{agent}: run nodus node set-agent {node.shown_id} {agent}"
            )
        return
    minimum = int(await rpc(chain, registry.functions.minStake().call()))
    amount = minimum if stake is None else stake
    if amount < minimum:
        raise CliError(
            f"--stake {format_nds(amount)} is below NodeRegistry's minimum, {format_nds(minimum)}",
            exit_code=2,
        )
    balance = int(await rpc(chain, token.functions.balanceOf(account.address).call()))
    if balance < amount:
        raise CliError(
            f"{account.address} holds {format_nds(balance)}; staking needs {format_nds(amount)}",
            exit_code=2,
        )
    allowance = int(
        await rpc(chain, token.functions.allowance(account.address, registry.address).call())
    )
    if allowance >= amount:
        _skipped(f"NodeRegistry may already spend {format_nds(allowance)}: no approve needed")
    else:
        await send(
            chain,
            account,
            token.functions.approve(registry.address, amount),
            f"approve {format_nds(amount)} for NodeRegistry",
        )
    await send(
        chain,
        account,
        registry.functions.register(salt, amount, agent, ""),
        f"register the node on-chain with {format_nds(amount)} staked",
    )


async def _with_api(api: ApiSession, node_id: str, body: dict[str, Any], wait: float) -> str:
    """POST /v1/nodes (signed in as the operator) unless the API already has the node; retried
    while the API's chain reader has not seen the registration yet (an RPC behind ours)."""
    try:
        existing = await api.get(f"/v1/nodes/{node_id}", auth=False)
    except ApiNotFound:
        existing = None
    if existing is not None:
        _skipped("already registered with the control plane")
        differs = [k for k in ("endpoint", "country", "protocols") if existing.get(k) != body[k]]
        if differs:
            err_console.print(
                f"[yellow]warning:[/yellow] the control plane has a different {', '.join(differs)}"
                f": change it with nodus node update {node_id}"
            )
        return "already"
    deadline = time.monotonic() + wait
    while True:
        try:
            await api.post("/v1/nodes", body)
        except CliError as exc:
            late = "answered 403" in exc.message and any(s in exc.message for s in NOT_YET_ON_CHAIN)
            if not late or time.monotonic() > deadline:
                raise CliError(
                    f"the node is staked on-chain but the control plane refused it: "
                    f"{exc.message}; fix that and run this command again (the on-chain steps "
                    "will be skipped)",
                    exc.exit_code,
                    exc.next_step,
                ) from None
            await asyncio.sleep(POLL_S)
            continue
        _done("registered with the control plane")
        return "registered"


async def _indexed(api: ApiSession, node_id: str, wait: float) -> None:
    """Until the control plane's indexer has the node (its agent signs in against the index):
    GET /v1/nodes/{id}/health stops saying `not_indexed`."""
    deadline = time.monotonic() + wait
    while True:
        try:
            health = await api.get(f"/v1/nodes/{node_id}/health", auth=False)
        except ApiNotFound:
            _skipped("this control plane has no node health endpoint: not waiting for its index")
            return
        reason = str(health.get("summary", {}).get("reason", ""))
        if reason != "not_indexed":
            _done("indexed by the control plane")
            return
        if time.monotonic() > deadline:
            raise CliError(
                f"the control plane has not indexed the node after {wait:.0f} s (its chain sync "
                "may be behind); run this command again later to check"
            )
        await asyncio.sleep(POLL_S)
