"""A node's life through `nodus node` on the real stack: status (on-chain, the control plane,
health and scores), update at the control plane, set-agent, exit, and withdraw refused while
unbonding (saying when) and done after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client, contract, node_id_of
from control_plane.jobs import Services
from control_plane.rewards import repository
from control_plane.rewards.posting.gather import build_epoch
from tests.cli.conftest import Cli, flat
from tests.cli.test_node_register import api_node, register_args
from tests.control_plane.chain.support import services
from tests.control_plane.rewards.support import Prober, transaction
from tests.e2e.stack import ControlPlane
from tests.support.builders import MIN_STAKE, NDS, fresh_wallet, wg_keys
from tests.support.devchain import advance_time

__all__ = ["services"]


async def registered(
    cli: Cli, w3: Web3Client, deployment: Deployment, control_plane: ControlPlane
) -> tuple[LocalAccount, str]:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    salt = b"\x07" * 32
    result = await cli(
        *register_args("198.51.100.20:51820", salt, Account.create().address, wg_keys().public),
        key=operator,
        env={"NODUS_API_URL": control_plane.url},
    )
    assert result.exit_code == 0, result.output
    return operator, node_id_of(operator.address, salt)


async def test_status_update_set_agent_exit_withdraw(
    cli: Cli, w3: Web3Client, deployment: Deployment, control_plane: ControlPlane
) -> None:
    env: dict[str, str | None] = {"NODUS_API_URL": control_plane.url}
    operator, node_id = await registered(cli, w3, deployment, control_plane)
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")

    shown = await cli("node", "status", node_id, env=env)
    assert shown.exit_code == 0, shown.output
    said = flat(shown)
    assert "on-chain active" in said
    assert "stake 100 NDS" in said
    assert "198.51.100.20:51820 DE wireguard" in said
    assert "health unknown (never_probed)" in said  # with the fix line after it
    assert "not scored yet" in said
    assert "nothing yet (no accepted root names the operator)" in said

    updated = await cli(
        "node", "update", node_id, "--endpoint", "198.51.100.21:51820", "--country", "nl",
        key=operator, env=env,
    )  # fmt: skip
    assert updated.exit_code == 0, updated.output
    record = (await api_node(control_plane, node_id)).json()
    assert record["endpoint"] == "198.51.100.21:51820"
    assert record["country"] == "NL"

    stranger = await fresh_wallet(w3, deployment, 0)
    refused = await cli("node", "update", node_id, "--country", "FR", key=stranger, env=env)
    assert refused.exit_code == 1
    assert "403" in flat(refused)

    new_agent = Account.create().address
    moved = await cli("node", "set-agent", node_id, new_agent, key=operator)
    assert moved.exit_code == 0, moved.output
    raw_id = bytes.fromhex(node_id[2:])
    assert (await registry.functions.getNode(raw_id).call())[1] == new_agent
    not_mine = await cli("node", "set-agent", node_id, new_agent, key=stranger)
    assert not_mine.exit_code == 2
    assert f"operated by {operator.address}" in flat(not_mine)

    early = await cli("node", "withdraw", node_id, key=operator)
    assert early.exit_code == 2
    assert "run nodus node exit" in flat(early)

    exited = await cli("node", "exit", node_id, key=operator)
    assert exited.exit_code == 0, exited.output
    assert "is exiting" in flat(exited)
    as_json = await cli("node", "status", node_id, "--json", env=env)
    assert as_json.exit_code == 0, as_json.output
    state = json.loads(as_json.stdout)
    assert state["chain"]["status"] == "exiting"
    assert state["chain"]["active"] is False
    unbonding_end = state["chain"]["unbonding_end"]
    assert unbonding_end > 0

    unbonding = await cli("node", "withdraw", node_id, key=operator)
    assert unbonding.exit_code == 1
    assert "still unbonding: withdraw from" in flat(unbonding)

    block = await w3.eth.get_block("latest")
    await advance_time(w3, unbonding_end - int(block["timestamp"]))
    before = await token.functions.balanceOf(operator.address).call()
    withdrawn = await cli("node", "withdraw", node_id, key=operator)
    assert withdrawn.exit_code == 0, withdrawn.output
    assert await token.functions.balanceOf(operator.address).call() == before + MIN_STAKE
    assert (await registry.functions.getNode(raw_id).call())[3] == 3  # Withdrawn
    again = await cli("node", "withdraw", node_id, key=operator)
    assert again.exit_code == 0
    assert "already withdrawn" in flat(again)


async def test_status_shows_the_latest_scores_and_health_verdicts_with_their_reasons(
    cli: Cli,
    w3: Web3Client,
    deployment: Deployment,
    control_plane: ControlPlane,
    services: Services,
) -> None:
    env: dict[str, str | None] = {"NODUS_API_URL": control_plane.url}
    _operator, node_id = await registered(cli, w3, deployment, control_plane)
    # A prober's signed rounds over the last half hour: the first 20 answered, the last 10
    # timed out; the epoch is built and recorded as the epoch job does.
    prober = Prober()
    # Rounded up: the epoch covers nodes created before its end, and the node was created
    # within this second (rounding down left it out when both fell in the same second).
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    start = end - timedelta(minutes=30)
    async with transaction(services.sessions) as session:
        await prober.allow(session)
        await prober.rounds(session, node_id, start, 30, answered=20)
    async with transaction(services.sessions) as session:
        result = await build_epoch(session, services.chain, 1, start, end, 10 * NDS, {})
        await repository.save_epoch_scores(session, result)

    shown = await cli("node", "status", node_id, env=env)

    assert shown.exit_code == 0, shown.output
    said = flat(shown)
    assert "health down (timeout)" in said
    assert "score (epoch 1)" in said
    (item,) = json.loads((await cli("node", "status", node_id, "--json", env=env)).stdout)["scores"]
    assert item["reasons"]
    assert "; ".join(item["reasons"]) in said
