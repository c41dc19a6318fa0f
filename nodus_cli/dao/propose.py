"""`nodus dao propose <action>`: create a proposal with one typed action (or raw calldata).

Each action is dry-run as the timelock would execute it now, so a proposal that cannot execute
is refused before it costs a governance round (`--force` skips this); the proposal id is printed.
Bounds of the contracts' setters are read from the contracts' public constants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Final

import typer
from eth_typing import HexStr
from rich.markup import escape

from nodus_cli.dao.proposals import (
    ORACLE_ROLE,
    Action,
    describe_action,
    governance_round,
    oracle_holders,
)
from nodus_cli.support.chain import Chain, connect, describe_revert, events_in, rpc, run, send
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    CliError,
    UsageError,
    console,
    err_console,
    format_nds,
    format_time,
    hex0x,
)
from nodus_cli.support.parsing import (
    parse_address,
    parse_bytes32,
    parse_hex,
    parse_nds,
    text_to_bytes32,
)
from nodus_cli.support.wallet import load_account

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.types import TxParams

propose_app = typer.Typer(
    help="Create a proposal with one typed action (or raw calldata); prints its id.",
    no_args_is_help=True,
)

# Basis points are 0..10,000 by definition (SubscriptionManager.BPS): checked before any chain
# is reached, like every other malformed input.
BPS: Final = 10_000


ActionBuilder = Callable[[Chain], Awaitable[list[Action]]]
InputCheck = Callable[[Chain], Awaitable[None]]


def _call(chain: Chain, name: str, function: str, *args: object) -> Action:
    data = chain.contract(name).encode_abi(function, args=list(args))
    return Action(chain.deployment.addresses[name], 0, bytes.fromhex(data[2:]))


def _propose(
    options: Options,
    description: str,
    force: bool,
    build: ActionBuilder,
    check: InputCheck | None = None,
) -> None:
    """Proposes the actions `build` makes (after `check`, if any, accepted the input against the
    chain, before the key is loaded): dry-run as the timelock unless `force`, then `propose`."""
    if not description.strip():
        raise typer.BadParameter("the description must not be empty", param_hint="--description")
    run(lambda: _propose_async(options, description, force, build, check))


async def _propose_async(
    options: Options,
    description: str,
    force: bool,
    build: ActionBuilder,
    check: InputCheck | None,
) -> None:
    from eth_utils.crypto import keccak

    chain = await connect(options.rpc_url, options.deployments_dir)
    if check is not None:
        await check(chain)
    account = load_account(options.key_file)
    actions = await build(chain)
    governor = chain.contract("NodusGovernor")
    if not force:
        await _simulate(chain, actions)

    targets = [a.target for a in actions]
    values = [a.value for a in actions]
    calldatas = [a.calldata for a in actions]
    description_hash = keccak(text=description)
    proposal_id = int(
        await rpc(
            chain,
            governor.functions.hashProposal(targets, values, calldatas, description_hash).call(),
        )
    )
    if await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()) != 0:
        raise CliError(
            f"these actions were already proposed with this description (proposal "
            f"{proposal_id}); change --description to propose them again"
        )
    await _check_threshold(chain, account)

    err_console.print(f"Proposing {len(actions)} action{'s' if len(actions) > 1 else ''}:")
    for i, action in enumerate(actions, 1):
        err_console.print(f"  {i}. {escape(describe_action(chain, action))}")
    receipt = await send(
        chain,
        account,
        governor.functions.propose(targets, values, calldatas, description),
        "propose",
    )
    created = events_in(receipt, governor.events.ProposalCreated())
    console.print(f"proposal id: {proposal_id}")
    if created:
        now = await chain.now()
        vote_start, vote_end = (
            int(created[0]["args"]["voteStart"]),
            int(created[0]["args"]["voteEnd"]),
        )
        console.print(
            f"voting opens after {format_time(vote_start, now)} and closes at "
            f"{format_time(vote_end, now)}"
        )
    console.print(f"next: nodus dao vote {proposal_id} for|against|abstain")


async def _simulate(chain: Chain, actions: list[Action]) -> None:
    """Runs each action as the timelock would, now: a proposal that cannot execute is refused
    before it costs a governance round (`--force` skips this)."""
    from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
    from web3.types import Wei

    timelock = chain.deployment.addresses["TimelockController"]
    for i, action in enumerate(actions, 1):
        call: TxParams = {
            "from": timelock,
            "to": action.target,
            "data": HexStr(hex0x(action.calldata)),
            "value": Wei(action.value),
        }
        try:
            await chain.w3.eth.call(call)
        except (ContractCustomError, ContractLogicError, Web3RPCError) as exc:
            reason = (
                f"{exc.message}"
                if isinstance(exc, Web3RPCError)
                else describe_revert(exc, chain.reverts)
            )
            raise CliError(
                f"action {i} ({describe_action(chain, action)}) would fail if executed now: "
                f"{reason}; fix it, or pass --force to propose it anyway"
            ) from None


async def _check_threshold(chain: Chain, account: LocalAccount) -> None:
    governor = chain.contract("NodusGovernor")
    threshold = int(await rpc(chain, governor.functions.proposalThreshold().call()))
    if threshold == 0:
        return
    now = await chain.now()
    votes = int(await rpc(chain, governor.functions.getVotes(account.address, now - 1).call()))
    if votes < threshold:
        raise CliError(
            f"proposing takes {format_nds(threshold)} of delegated votes; {account.address} has "
            f"{format_nds(votes)} (nodus dao delegate, then wait a block)"
        )


async def _within_bounds(chain: Chain, seconds: int, contract: str, bound: str) -> None:
    """SECONDS within the contract's own MIN_<bound>..MAX_<bound> (its public constants, read
    once per invocation), so the CLI never drifts from the deployed contract."""
    low = await chain.constant(contract, f"MIN_{bound}")
    high = await chain.constant(contract, f"MAX_{bound}")
    if not low <= seconds <= high:
        raise UsageError(
            f"Invalid value for 'SECONDS': {seconds} is not in the range {low}<=x<={high} "
            f"({contract}.MIN_{bound}..MAX_{bound})"
        )


DescriptionOption = Annotated[
    str,
    typer.Option(
        "--description",
        "-d",
        help="What the proposal does and why (its first line is its title).",
    ),
]
ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Propose even if an action would revert if executed now."),
]
NdsArgument = Annotated[int, typer.Argument(parser=parse_nds, metavar="NDS", show_default=False)]


@propose_app.command("set-price")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_price(
    price: NdsArgument,
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Set the subscription price of 30 days, in NDS."""
    if price == 0:
        raise typer.BadParameter("the price must be above 0", param_hint="NDS")

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "SubscriptionManager", "setPrice", price)]

    _propose(options, description, force, build)


@propose_app.command("set-revenue-split")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_revenue_split(
    bps: Annotated[
        int,
        typer.Argument(
            min=0, max=BPS, metavar="BPS", help="Share of revenue for the reward pool (0-10000)."
        ),
    ],
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Set the reward pool's share of subscription revenue, in basis points."""

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "SubscriptionManager", "setRevenueSplit", bps)]

    _propose(options, description, force, build)


@propose_app.command("set-min-stake")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_min_stake(
    stake: NdsArgument,
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Set the minimum stake to register a node, in NDS."""
    if stake == 0:
        raise typer.BadParameter("the minimum stake must be above 0", param_hint="NDS")

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "NodeRegistry", "setMinStake", stake)]

    _propose(options, description, force, build)


@propose_app.command("set-unbonding-period")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_unbonding_period(
    seconds: Annotated[int, typer.Argument(metavar="SECONDS")],
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Set how long an exiting node's stake stays slashable, in seconds."""

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "NodeRegistry", "setUnbondingPeriod", seconds)]

    async def check(chain: Chain) -> None:
        await _within_bounds(chain, seconds, "NodeRegistry", "UNBONDING_PERIOD")

    _propose(options, description, force, build, check)


@propose_app.command("set-epoch-budget")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_epoch_budget(
    budget: NdsArgument,
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Set the most NDS one reward epoch may pay out."""

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "RewardDistributor", "setEpochBudget", budget)]

    _propose(options, description, force, build)


@propose_app.command("set-challenge-period")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_challenge_period(
    seconds: Annotated[int, typer.Argument(metavar="SECONDS")],
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Set the challenge window of reward roots, in seconds."""

    async def build(chain: Chain) -> list[Action]:
        governance = await governance_round(chain)
        if seconds <= governance:
            err_console.print(
                f"[yellow]warning:[/yellow] a governance round takes {governance} s; a shorter "
                "challenge window leaves the DAO no time to revoke a bad root"
            )
        return [_call(chain, "RewardDistributor", "setChallengePeriod", seconds)]

    async def check(chain: Chain) -> None:
        await _within_bounds(chain, seconds, "RewardDistributor", "CHALLENGE_PERIOD")

    _propose(options, description, force, build, check)


@propose_app.command("set-oracle")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_set_oracle(
    new: Annotated[
        str,
        typer.Argument(parser=parse_address, metavar="ADDRESS", help="The new oracle key."),
    ],
    description: DescriptionOption,
    old: Annotated[
        list[str] | None,
        typer.Option(
            "--old",
            parser=parse_address,
            metavar="ADDRESS",
            help="A current oracle to revoke in the same proposal (repeatable).",
        ),
    ] = None,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Grant the reward oracle role to ADDRESS and revoke it from each --old, in one proposal."""
    revoked = list(dict.fromkeys(old or []))
    if new in revoked:
        raise typer.BadParameter(f"{new} is both the new oracle and an --old one")

    async def build(chain: Chain) -> list[Action]:
        rewards = chain.contract("RewardDistributor")
        for address in revoked:
            if not await rpc(chain, rewards.functions.hasRole(ORACLE_ROLE, address).call()):
                holders = await oracle_holders(chain)
                raise UsageError(
                    f"--old {address} does not hold ORACLE_ROLE; current oracle(s): "
                    f"{', '.join(holders) or 'none'}"
                )
        if await rpc(chain, rewards.functions.hasRole(ORACLE_ROLE, new).call()):
            err_console.print(f"[yellow]warning:[/yellow] {new} already holds ORACLE_ROLE")
        if not revoked:
            others = [h for h in await oracle_holders(chain) if h != new]
            if others:
                err_console.print(
                    f"[yellow]warning:[/yellow] {', '.join(others)} keep(s) ORACLE_ROLE; pass "
                    "--old ADDRESS to revoke it in the same proposal"
                )
        return [
            *(_call(chain, "RewardDistributor", "revokeRole", ORACLE_ROLE, a) for a in revoked),
            _call(chain, "RewardDistributor", "grantRole", ORACLE_ROLE, new),
        ]

    _propose(options, description, force, build)


@propose_app.command("slash")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_slash(
    node_id: Annotated[
        bytes,
        typer.Argument(parser=parse_bytes32, metavar="NODE_ID", help="The node's bytes32 id."),
    ],
    amount: NdsArgument,
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why, in at most 32 bytes (stored on-chain as bytes32)."),
    ],
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Slash AMOUNT NDS of a node's stake (to the treasury)."""
    if amount == 0:
        raise typer.BadParameter("the amount must be above 0", param_hint="NDS")
    reason32 = text_to_bytes32(reason)

    async def build(chain: Chain) -> list[Action]:
        registry = chain.contract("NodeRegistry")
        node = await rpc(chain, registry.functions.getNode(node_id).call())
        if int(node[3]) == 0:
            raise UsageError(f"there is no node {hex0x(node_id)} in the NodeRegistry")
        return [_call(chain, "NodeRegistry", "slash", node_id, amount, reason32)]

    _propose(options, description, force, build)


@propose_app.command("revoke-root")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_revoke_root(
    epoch: Annotated[int, typer.Argument(min=1, metavar="EPOCH")],
    root: Annotated[bytes, typer.Argument(parser=parse_bytes32, metavar="ROOT")],
    description: DescriptionOption,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Revoke the pending reward root ROOT of EPOCH (it then pays nothing)."""

    async def build(chain: Chain) -> list[Action]:
        rewards = chain.contract("RewardDistributor")
        pending = await rpc(chain, rewards.functions.pendingRoot().call())
        valid_at = int(pending[4])
        if int(pending[3]) == epoch and bytes(pending[0]) == root:
            earliest = await chain.now() + await governance_round(chain)
            if valid_at <= earliest:
                err_console.print(
                    f"[yellow]warning:[/yellow] its challenge window ends at "
                    f"{format_time(valid_at)}, before this proposal can execute (at the "
                    f"earliest {format_time(earliest)}): anyone may accept the root first"
                )
        return [_call(chain, "RewardDistributor", "revokeEpoch", epoch, root)]

    _propose(options, description, force, build)


@propose_app.command("raw")
@shared_options("key_file", "rpc_url", "deployments_dir")
def propose_raw(
    target: Annotated[str, typer.Option("--target", parser=parse_address, metavar="ADDRESS")],
    calldata: Annotated[bytes, typer.Option("--calldata", parser=parse_hex, metavar="0x..")],
    description: DescriptionOption,
    value: Annotated[int, typer.Option("--value", min=0, metavar="WEI")] = 0,
    force: ForceOption = False,
    *,
    options: Options,
) -> None:
    """Propose any call the timelock should make: target, calldata and ETH value."""
    from eth_utils.address import to_checksum_address

    async def build(chain: Chain) -> list[Action]:
        address = to_checksum_address(target)
        if not await rpc(chain, chain.w3.eth.get_code(address)):
            err_console.print(f"[yellow]warning:[/yellow] {address} has no contract code")
        return [Action(address, value, calldata)]

    _propose(options, description, force, build)
