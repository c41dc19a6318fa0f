"""`nodus dao`: the DAO member's commands (OpenZeppelin Governor + TimelockController).

delegate -> propose <action> -> vote -> queue -> execute, and `status` at any point. A proposal is
named by the Governor's proposal id; `queue` and `execute` need its actions, which are read back
from its `ProposalCreated` event on the chain (and checked against the id), so there is no local
state to lose and any Governor-compatible tool can take over at any step.

On a local anvil chain, `--advance-time` moves the clock past the delay in the way: the voting
delay before a vote, the voting period before queueing, the timelock delay before executing.
It is refused on any other chain.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from rich.markup import escape
from rich.table import Table
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.types import EventData, TxParams, Wei

from control_plane.cli_support import (
    DEFAULT_RPC_URL,
    PROPOSAL_STATES,
    AdvanceTimeOption,
    Chain,
    CliError,
    DeploymentsDirOption,
    KeyFileOption,
    RpcUrlOption,
    UsageError,
    advance_to,
    bytes32_to_text,
    connect,
    console,
    describe_revert,
    duration,
    err_console,
    events_in,
    format_nds,
    format_time,
    get_logs,
    hex0x,
    load_account,
    parse_address,
    parse_bytes32,
    parse_hex,
    parse_nds,
    require_local,
    rpc,
    run,
    send,
    short_hex,
    text_to_bytes32,
)
from control_plane.paths import DEFAULT_DEPLOYMENTS_DIR

dao_app = typer.Typer(
    name="dao",
    help="Govern Nodus: delegate votes, propose, vote, queue, execute, and follow proposals.",
    no_args_is_help=True,
)
propose_app = typer.Typer(
    help="Create a proposal with one typed action (or raw calldata); prints its id.",
    no_args_is_help=True,
)
dao_app.add_typer(propose_app, name="propose")

PENDING, ACTIVE, CANCELED, DEFEATED, SUCCEEDED, QUEUED, EXPIRED, EXECUTED = range(8)
ORACLE_ROLE: Final = keccak(text="ORACLE_ROLE")
MAX_CHALLENGE_PERIOD: Final = 30 * 86_400
MIN_UNBONDING_PERIOD: Final = 3_600
MAX_UNBONDING_PERIOD: Final = 365 * 86_400
BPS: Final = 10_000


class Support(StrEnum):
    """How a vote counts (GovernorCountingSimple: 0 against, 1 for, 2 abstain)."""

    AGAINST = "against"
    FOR = "for"
    ABSTAIN = "abstain"

    @property
    def code(self) -> int:
        return {"against": 0, "for": 1, "abstain": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Action:
    """One call the timelock makes when the proposal executes."""

    target: ChecksumAddress
    value: int
    calldata: bytes


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposal as its ProposalCreated event recorded it."""

    proposal_id: int
    proposer: ChecksumAddress
    actions: list[Action]
    description: str
    block_number: int

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)

    def operation(self) -> tuple[list[ChecksumAddress], list[int], list[bytes], bytes]:
        """(targets, values, calldatas, descriptionHash): what queue and execute take."""
        return (
            [a.target for a in self.actions],
            [a.value for a in self.actions],
            [a.calldata for a in self.actions],
            self.description_hash,
        )


# --- reading proposals --------------------------------------------------------------------


def parse_proposal_id(text: str) -> int:
    value = text.strip()
    try:
        number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a proposal id (a decimal number)") from None
    if not 0 < number < 2**256:
        raise typer.BadParameter(f"{text!r} is not a proposal id (a uint256 above 0)")
    return number


async def proposal_state(chain: Chain, proposal_id: int) -> int:
    governor = chain.contract("NodusGovernor")
    if await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()) == 0:
        raise CliError(f"there is no proposal {proposal_id} on chain {chain.chain_id}")
    return int(await rpc(chain, governor.functions.state(proposal_id).call()))


async def _last_block_at_or_before(chain: Chain, timestamp: int, low: int, high: int) -> int:
    """The last block in [low, high] whose timestamp is <= `timestamp` (or `low`)."""

    async def time_of(number: int) -> int:
        return int((await rpc(chain, chain.w3.eth.get_block(number)))["timestamp"])

    if await time_of(high) <= timestamp:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if await time_of(middle) <= timestamp:
            low = middle
        else:
            high = middle - 1
    return low


async def find_proposal(chain: Chain, proposal_id: int) -> Proposal:
    """Reads the proposal's actions and description back from its ProposalCreated event.

    The event does not index the id, so logs are scanned newest first, starting at the last
    block before the proposal's snapshot (it was created at or before that time)."""
    governor = chain.contract("NodusGovernor")
    snapshot = int(await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()))
    if snapshot == 0:
        raise CliError(f"there is no proposal {proposal_id} on chain {chain.chain_id}")
    start = chain.deployment.start_block
    latest = int(await rpc(chain, chain.w3.eth.block_number))
    upper = await _last_block_at_or_before(chain, snapshot, start, latest)
    found: list[EventData] = []

    def hit(batch: list[EventData]) -> bool:
        found.extend(e for e in batch if int(e["args"]["proposalId"]) == proposal_id)
        return bool(found)

    await get_logs(
        chain,
        governor.events.ProposalCreated(),
        from_block=start,
        to_block=upper,
        newest_first=True,
        stop=hit,
    )
    if not found:
        raise CliError(
            f"proposal {proposal_id} exists but its ProposalCreated event is not in blocks "
            f"{start}..{upper}; does the RPC node prune old logs?"
        )
    args = found[0]["args"]
    proposal = Proposal(
        proposal_id=proposal_id,
        proposer=to_checksum_address(args["proposer"]),
        actions=[
            Action(to_checksum_address(t), int(v), bytes(c))
            for t, v, c in zip(args["targets"], args["values"], args["calldatas"], strict=True)
        ],
        description=str(args["description"]),
        block_number=int(found[0]["blockNumber"]),
    )
    recomputed = await rpc(chain, governor.functions.hashProposal(*proposal.operation()).call())
    if int(recomputed) != proposal_id:
        raise CliError(f"the ProposalCreated event found does not hash to {proposal_id}")
    return proposal


def describe_action(chain: Chain, action: Action) -> str:
    """A call in words the DAO member can check: `SubscriptionManager.setPrice(12 NDS)`."""
    names = {address: name for name, address in chain.deployment.addresses.items()}
    value = f" with {action.value} wei" if action.value else ""
    name = names.get(action.target)
    generic = f"call {action.target} with data {short_hex(action.calldata, 8)}{value}"
    if name is None:
        return generic
    try:
        function, decoded = chain.contract(name).decode_function_input(
            HexStr(hex0x(action.calldata))
        )
    except ValueError:
        return generic
    fn_name = str(function.fn_name)
    args = list(decoded.values())
    shown = _READABLE.get((name, fn_name), _generic_args)(args)
    return f"{name}.{fn_name}({shown}){value}"


def _generic_args(args: list[Any]) -> str:
    return ", ".join(hex0x(a) if isinstance(a, bytes) else str(a) for a in args)


def _seconds(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds} s = {duration(seconds)}"


def _role(role: bytes) -> str:
    return "ORACLE_ROLE" if role == ORACLE_ROLE else hex0x(role)


_READABLE: Final[dict[tuple[str, str], Callable[[list[Any]], str]]] = {
    ("SubscriptionManager", "setPrice"): lambda a: f"{format_nds(a[0])} per 30 days",
    ("SubscriptionManager", "setRevenueSplit"): (
        lambda a: f"{a[0]} bps = {a[0] / 100:g}% of revenue to the reward pool"
    ),
    ("NodeRegistry", "setMinStake"): lambda a: format_nds(a[0]),
    ("NodeRegistry", "setUnbondingPeriod"): lambda a: _seconds(a[0]),
    ("NodeRegistry", "slash"): (
        lambda a: f"node {hex0x(a[0])}, {format_nds(a[1])}, reason {bytes32_to_text(a[2])!r}"
    ),
    ("RewardDistributor", "setEpochBudget"): lambda a: format_nds(a[0]),
    ("RewardDistributor", "setChallengePeriod"): lambda a: _seconds(a[0]),
    ("RewardDistributor", "grantRole"): lambda a: f"{_role(a[0])}, {a[1]}",
    ("RewardDistributor", "revokeRole"): lambda a: f"{_role(a[0])}, {a[1]}",
    ("RewardDistributor", "revokeEpoch"): lambda a: f"epoch {a[0]}, root {hex0x(a[1])}",
}


# --- proposing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ProposeOptions:
    description: str
    key_file: Path | None
    rpc_url: str
    deployments_dir: Path
    force: bool


ActionBuilder = Callable[[Chain], Awaitable[list[Action]]]


def _call(chain: Chain, name: str, function: str, *args: object) -> Action:
    data = chain.contract(name).encode_abi(function, args=list(args))
    return Action(chain.deployment.addresses[name], 0, bytes.fromhex(data[2:]))


def _propose(options: _ProposeOptions, build: ActionBuilder) -> None:
    if not options.description.strip():
        raise typer.BadParameter("the description must not be empty", param_hint="--description")
    run(lambda: _propose_async(options, build))


async def _propose_async(options: _ProposeOptions, build: ActionBuilder) -> None:
    chain = await connect(options.rpc_url, options.deployments_dir)
    account = load_account(options.key_file)
    actions = await build(chain)
    governor = chain.contract("NodusGovernor")
    if not options.force:
        await _simulate(chain, actions)

    targets = [a.target for a in actions]
    values = [a.value for a in actions]
    calldatas = [a.calldata for a in actions]
    description_hash = keccak(text=options.description)
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
        governor.functions.propose(targets, values, calldatas, options.description),
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
            reason = f"{exc.message}" if isinstance(exc, Web3RPCError) else describe_revert(exc)
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


def _options(
    description: str, key_file: Path | None, rpc_url: str, deployments_dir: Path, force: bool
) -> _ProposeOptions:
    return _ProposeOptions(description, key_file, rpc_url, deployments_dir, force)


@propose_app.command("set-price")
def propose_set_price(
    price: NdsArgument,
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Set the subscription price of 30 days, in NDS."""
    if price == 0:
        raise typer.BadParameter("the price must be above 0", param_hint="NDS")

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "SubscriptionManager", "setPrice", price)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("set-revenue-split")
def propose_set_revenue_split(
    bps: Annotated[
        int,
        typer.Argument(
            min=0, max=BPS, metavar="BPS", help="Share of revenue for the reward pool (0-10000)."
        ),
    ],
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Set the reward pool's share of subscription revenue, in basis points."""

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "SubscriptionManager", "setRevenueSplit", bps)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("set-min-stake")
def propose_set_min_stake(
    stake: NdsArgument,
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Set the minimum stake to register a node, in NDS."""
    if stake == 0:
        raise typer.BadParameter("the minimum stake must be above 0", param_hint="NDS")

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "NodeRegistry", "setMinStake", stake)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("set-unbonding-period")
def propose_set_unbonding_period(
    seconds: Annotated[
        int,
        typer.Argument(min=MIN_UNBONDING_PERIOD, max=MAX_UNBONDING_PERIOD, metavar="SECONDS"),
    ],
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Set how long an exiting node's stake stays slashable, in seconds."""

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "NodeRegistry", "setUnbondingPeriod", seconds)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("set-epoch-budget")
def propose_set_epoch_budget(
    budget: NdsArgument,
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Set the most NDS one reward epoch may pay out."""

    async def build(chain: Chain) -> list[Action]:
        return [_call(chain, "RewardDistributor", "setEpochBudget", budget)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("set-challenge-period")
def propose_set_challenge_period(
    seconds: Annotated[int, typer.Argument(min=1, max=MAX_CHALLENGE_PERIOD, metavar="SECONDS")],
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Set the challenge window of reward roots, in seconds."""

    async def build(chain: Chain) -> list[Action]:
        governance = await _governance_round(chain)
        if seconds <= governance:
            err_console.print(
                f"[yellow]warning:[/yellow] a governance round takes {governance} s; a shorter "
                "challenge window leaves the DAO no time to revoke a bad root"
            )
        return [_call(chain, "RewardDistributor", "setChallengePeriod", seconds)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("set-oracle")
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
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
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

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("slash")
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
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
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

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("revoke-root")
def propose_revoke_root(
    epoch: Annotated[int, typer.Argument(min=1, metavar="EPOCH")],
    root: Annotated[bytes, typer.Argument(parser=parse_bytes32, metavar="ROOT")],
    description: DescriptionOption,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Revoke the pending reward root ROOT of EPOCH (it then pays nothing)."""

    async def build(chain: Chain) -> list[Action]:
        rewards = chain.contract("RewardDistributor")
        pending = await rpc(chain, rewards.functions.pendingRoot().call())
        valid_at = int(pending[4])
        if int(pending[3]) == epoch and bytes(pending[0]) == root:
            earliest = await chain.now() + await _governance_round(chain)
            if valid_at <= earliest:
                err_console.print(
                    f"[yellow]warning:[/yellow] its challenge window ends at "
                    f"{format_time(valid_at)}, before this proposal can execute (at the "
                    f"earliest {format_time(earliest)}): anyone may accept the root first"
                )
        return [_call(chain, "RewardDistributor", "revokeEpoch", epoch, root)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


@propose_app.command("raw")
def propose_raw(
    target: Annotated[str, typer.Option("--target", parser=parse_address, metavar="ADDRESS")],
    calldata: Annotated[bytes, typer.Option("--calldata", parser=parse_hex, metavar="0x..")],
    description: DescriptionOption,
    value: Annotated[int, typer.Option("--value", min=0, metavar="WEI")] = 0,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
    force: ForceOption = False,
) -> None:
    """Propose any call the timelock should make: target, calldata and ETH value."""

    async def build(chain: Chain) -> list[Action]:
        address = to_checksum_address(target)
        if not await rpc(chain, chain.w3.eth.get_code(address)):
            err_console.print(f"[yellow]warning:[/yellow] {address} has no contract code")
        return [Action(address, value, calldata)]

    _propose(_options(description, key_file, rpc_url, deployments_dir, force), build)


async def _governance_round(chain: Chain) -> int:
    """Seconds from proposing to the earliest execution: voting delay + period + timelock."""
    governor = chain.contract("NodusGovernor")
    timelock = chain.contract("TimelockController")
    delay = int(await rpc(chain, governor.functions.votingDelay().call()))
    period = int(await rpc(chain, governor.functions.votingPeriod().call()))
    min_delay = int(await rpc(chain, timelock.functions.getMinDelay().call()))
    return delay + period + min_delay + 1


async def oracle_holders(chain: Chain) -> list[ChecksumAddress]:
    """Who holds ORACLE_ROLE now (AccessControl does not enumerate: from RoleGranted logs)."""
    rewards = chain.contract("RewardDistributor")
    latest = int(await rpc(chain, chain.w3.eth.block_number))
    granted = await get_logs(
        chain,
        rewards.events.RoleGranted(),
        from_block=chain.deployment.start_block,
        to_block=latest,
        argument_filters={"role": ORACLE_ROLE},
    )
    holders: list[ChecksumAddress] = []
    for account in dict.fromkeys(to_checksum_address(e["args"]["account"]) for e in granted):
        if await rpc(chain, rewards.functions.hasRole(ORACLE_ROLE, account).call()):
            holders.append(account)
    return holders


# --- delegate, vote, queue, execute -------------------------------------------------------

ProposalIdArgument = Annotated[
    int, typer.Argument(parser=parse_proposal_id, metavar="PROPOSAL_ID", show_default=False)
]


@dao_app.command()
def delegate(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            parser=parse_address,
            metavar="ADDRESS",
            help="Who votes with your NDS (default: yourself).",
        ),
    ] = None,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
) -> None:
    """Delegate your NDS voting power (to yourself by default).

    NDS only votes once delegated, and only in proposals created after the delegation."""

    async def main() -> None:
        chain = await connect(rpc_url, deployments_dir)
        account = load_account(key_file)
        token = chain.contract("NDSToken")
        delegatee = to_checksum_address(to) if to else account.address
        balance = int(await rpc(chain, token.functions.balanceOf(account.address).call()))
        current = to_checksum_address(
            await rpc(chain, token.functions.delegates(account.address).call())
        )
        if current == delegatee:
            err_console.print(f"{account.address} already delegates to {delegatee}")
        else:
            await send(chain, account, token.functions.delegate(delegatee), "delegate")
        votes = int(await rpc(chain, token.functions.getVotes(delegatee).call()))
        console.print(
            f"{account.address} delegates its {format_nds(balance)} to {delegatee}; voting "
            f"power of {delegatee}: {format_nds(votes)}"
        )
        if balance == 0:
            err_console.print(
                "[yellow]warning:[/yellow] this account holds no NDS: there is nothing to vote with"
            )

    run(main)


@dao_app.command()
def vote(
    proposal_id: ProposalIdArgument,
    support: Annotated[Support, typer.Argument(metavar="for|against|abstain")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Recorded on-chain with the vote.")
    ] = None,
    advance_time: AdvanceTimeOption = False,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
) -> None:
    """Vote on an Active proposal (--advance-time: past the voting delay first)."""

    async def main() -> None:
        chain = await connect(rpc_url, deployments_dir)
        if advance_time:
            require_local(chain)
        account = load_account(key_file)
        governor = chain.contract("NodusGovernor")
        state = await proposal_state(chain, proposal_id)
        if state == PENDING:
            snapshot = int(
                await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call())
            )
            if not advance_time:
                raise CliError(
                    f"voting on proposal {proposal_id} opens after "
                    f"{format_time(snapshot, await chain.now())}; wait (on a local chain: "
                    "--advance-time)"
                )
            await advance_to(chain, snapshot + 1, "past the voting delay")
            state = await proposal_state(chain, proposal_id)
        if state != ACTIVE:
            raise CliError(
                f"proposal {proposal_id} is {PROPOSAL_STATES[state]}; votes are taken only while "
                "it is Active"
            )
        if await rpc(chain, governor.functions.hasVoted(proposal_id, account.address).call()):
            raise CliError(f"{account.address} has already voted on proposal {proposal_id}")
        call = (
            governor.functions.castVoteWithReason(proposal_id, support.code, reason)
            if reason
            else governor.functions.castVote(proposal_id, support.code)
        )
        receipt = await send(chain, account, call, f"vote {support.value}")
        cast = events_in(receipt, governor.events.VoteCast())
        weight = int(cast[0]["args"]["weight"]) if cast else 0
        console.print(
            f"{account.address} voted {support.value} on proposal {proposal_id} with "
            f"{format_nds(weight)}"
        )
        if weight == 0:
            err_console.print(
                "[yellow]warning:[/yellow] this vote weighs nothing: the account had no "
                "delegated votes at the proposal's snapshot (delegate before proposals are made)"
            )

    run(main)


@dao_app.command()
def queue(
    proposal_id: ProposalIdArgument,
    advance_time: AdvanceTimeOption = False,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
) -> None:
    """Queue a Succeeded proposal in the timelock (--advance-time: past the voting period)."""

    async def main() -> None:
        chain = await connect(rpc_url, deployments_dir)
        if advance_time:
            require_local(chain)
        account = load_account(key_file)
        governor = chain.contract("NodusGovernor")
        state = await proposal_state(chain, proposal_id)
        if state in (PENDING, ACTIVE):
            deadline = int(
                await rpc(chain, governor.functions.proposalDeadline(proposal_id).call())
            )
            if not advance_time:
                raise CliError(
                    f"voting on proposal {proposal_id} closes at "
                    f"{format_time(deadline, await chain.now())}; queue it after that (on a local "
                    "chain: --advance-time)"
                )
            await advance_to(chain, deadline + 1, "past the voting period")
            state = await proposal_state(chain, proposal_id)
        if state == DEFEATED:
            raise CliError(
                f"proposal {proposal_id} was Defeated: {await _why_defeated(chain, proposal_id)}"
            )
        if state != SUCCEEDED:
            raise CliError(
                f"proposal {proposal_id} is {PROPOSAL_STATES[state]}; only a Succeeded proposal "
                "can be queued"
            )
        proposal = await find_proposal(chain, proposal_id)
        await send(chain, account, governor.functions.queue(*proposal.operation()), "queue")
        eta = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
        console.print(
            f"proposal {proposal_id} is queued; it can be executed from "
            f"{format_time(eta, await chain.now())}"
        )
        console.print(f"next: nodus dao execute {proposal_id}")

    run(main)


@dao_app.command()
def execute(
    proposal_id: ProposalIdArgument,
    advance_time: AdvanceTimeOption = False,
    key_file: KeyFileOption = None,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
) -> None:
    """Execute a Queued proposal after the timelock delay (--advance-time: past that delay)."""

    async def main() -> None:
        chain = await connect(rpc_url, deployments_dir)
        if advance_time:
            require_local(chain)
        account = load_account(key_file)
        governor = chain.contract("NodusGovernor")
        state = await proposal_state(chain, proposal_id)
        if state == SUCCEEDED:
            raise CliError(
                f"proposal {proposal_id} is not queued yet: nodus dao queue {proposal_id}"
            )
        if state != QUEUED:
            raise CliError(
                f"proposal {proposal_id} is {PROPOSAL_STATES[state]}; only a Queued proposal "
                "can be executed"
            )
        eta = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
        now = await chain.now()
        if now < eta:
            if not advance_time:
                raise CliError(
                    f"the timelock holds proposal {proposal_id} until {format_time(eta, now)} "
                    "(on a local chain: --advance-time)"
                )
            await advance_to(chain, eta, "past the timelock delay")
        proposal = await find_proposal(chain, proposal_id)
        err_console.print("Executing:")
        for i, action in enumerate(proposal.actions, 1):
            err_console.print(f"  {i}. {escape(describe_action(chain, action))}")
        await send(chain, account, governor.functions.execute(*proposal.operation()), "execute")
        console.print(f"proposal {proposal_id} is executed")

    run(main)


async def _why_defeated(chain: Chain, proposal_id: int) -> str:
    governor = chain.contract("NodusGovernor")
    against, for_, abstain = await rpc(chain, governor.functions.proposalVotes(proposal_id).call())
    quorum = int(await rpc(chain, governor.functions.proposalQuorum(proposal_id).call()))
    reasons = []
    if for_ + abstain < quorum:
        reasons.append(
            f"quorum not reached ({format_nds(for_ + abstain)} for+abstain of {format_nds(quorum)})"
        )
    if for_ <= against:
        reasons.append(f"not more for ({format_nds(for_)}) than against ({format_nds(against)})")
    return "; ".join(reasons) or "see nodus dao status"


# --- status -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposalStatus:
    proposal_id: int
    state: str
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int  # 4% of the votable supply, fixed when the proposal was created
    snapshot: int
    deadline: int
    eta: int | None
    now: int
    proposer: ChecksumAddress
    description: str | None
    actions: list[str] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.proposal_id),
            "state": self.state,
            "for": str(self.votes_for),
            "against": str(self.votes_against),
            "abstain": str(self.votes_abstain),
            "quorum": str(self.quorum),
            "quorum_reached": self.votes_for + self.votes_abstain >= self.quorum,
            "snapshot": self.snapshot,
            "deadline": self.deadline,
            "eta": self.eta,
            "now": self.now,
            "proposer": self.proposer,
            "description": self.description,
            "actions": self.actions,
        }


async def proposal_status(chain: Chain, proposal_id: int) -> ProposalStatus:
    governor = chain.contract("NodusGovernor")
    state = await proposal_state(chain, proposal_id)
    against, for_, abstain = await rpc(chain, governor.functions.proposalVotes(proposal_id).call())
    snapshot = int(await rpc(chain, governor.functions.proposalSnapshot(proposal_id).call()))
    deadline = int(await rpc(chain, governor.functions.proposalDeadline(proposal_id).call()))
    eta = int(await rpc(chain, governor.functions.proposalEta(proposal_id).call()))
    proposer = await rpc(chain, governor.functions.proposalProposer(proposal_id).call())
    now = await chain.now()
    quorum = int(await rpc(chain, governor.functions.proposalQuorum(proposal_id).call()))
    description: str | None = None
    actions: list[str] | None = None
    try:
        proposal = await find_proposal(chain, proposal_id)
    except CliError as exc:
        err_console.print(f"[yellow]warning:[/yellow] {escape(exc.message)}")
    else:
        description = proposal.description
        actions = [describe_action(chain, a) for a in proposal.actions]
    return ProposalStatus(
        proposal_id=proposal_id,
        state=PROPOSAL_STATES[state],
        votes_for=int(for_),
        votes_against=int(against),
        votes_abstain=int(abstain),
        quorum=quorum,
        snapshot=snapshot,
        deadline=deadline,
        eta=eta or None,
        now=now,
        proposer=to_checksum_address(proposer),
        description=description,
        actions=actions,
    )


_STATE_STYLE: Final = {
    "Pending": "yellow",
    "Active": "cyan",
    "Succeeded": "green",
    "Queued": "blue",
    "Executed": "bold green",
    "Defeated": "red",
    "Canceled": "red",
    "Expired": "red",
}


@dao_app.command()
def status(
    proposal_id: ProposalIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rpc_url: RpcUrlOption = DEFAULT_RPC_URL,
    deployments_dir: DeploymentsDirOption = DEFAULT_DEPLOYMENTS_DIR,
) -> None:
    """A proposal's state, votes, quorum, voting window, timelock eta and actions."""

    async def main() -> ProposalStatus:
        chain = await connect(rpc_url, deployments_dir)
        return await proposal_status(chain, proposal_id)

    result = run(main)
    if as_json:
        console.print_json(json.dumps(result.as_json()))
        return
    console.print(f"proposal {result.proposal_id}")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    style = _STATE_STYLE.get(result.state, "white")
    table.add_row("state", f"[{style}]{result.state}[/{style}]")
    if result.description is not None:
        table.add_row(
            "title", escape(result.description.splitlines()[0]) if result.description else ""
        )
    table.add_row("for", format_nds(result.votes_for))
    table.add_row("against", format_nds(result.votes_against))
    table.add_row("abstain", format_nds(result.votes_abstain))
    counted = result.votes_for + result.votes_abstain
    reached = "reached" if counted >= result.quorum else "not reached"
    table.add_row(
        "quorum",
        f"{format_nds(result.quorum)}: {reached} ({format_nds(counted)} for+abstain)",
    )
    table.add_row("snapshot", format_time(result.snapshot, result.now))
    table.add_row("deadline", format_time(result.deadline, result.now))
    table.add_row("eta", format_time(result.eta, result.now) if result.eta else "-")
    table.add_row("proposer", result.proposer)
    for i, action in enumerate(result.actions or [], 1):
        table.add_row(f"action {i}", escape(action))
    console.print(table)
