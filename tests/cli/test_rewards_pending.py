"""Rewards an operator can see coming: while a root naming the operator waits out its challenge
window, `nodus rewards show` and `nodus node status` list its amount and when it becomes
claimable (read from the chain's pending root and the epoch's published data), instead of "no
rewards yet". The root is proposed by the oracle's real sender; the control plane serves the
published data from the same database."""

from __future__ import annotations

import json

from eth_account import Account

from control_plane.chain.contracts import Deployment, Web3Client, contract, node_id_of
from control_plane.chain.sender import TransactionSender
from control_plane.jobs import Services
from control_plane.rewards.posting.publisher import post_epoch
from nodus_cli.support.output import format_time
from tests.cli.conftest import Cli, flat
from tests.cli.test_node_register import register_args
from tests.control_plane.chain.support import make_sender, oracle_settings, sender, services
from tests.control_plane.rewards_posting.support import accept, published
from tests.e2e.stack import ControlPlane
from tests.support.builders import NDS, fresh_wallet, wg_keys

__all__ = ["make_sender", "oracle_settings", "sender", "services"]


async def test_a_pending_root_shows_its_amount_and_claimable_time(
    cli: Cli,
    w3: Web3Client,
    deployment: Deployment,
    control_plane: ControlPlane,
    services: Services,
    sender: TransactionSender,
) -> None:
    env: dict[str, str | None] = {"NODUS_API_URL": control_plane.url}
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    salt = b"\x09" * 32
    registered = await cli(
        *register_args("198.51.100.30:51820", salt, Account.create().address, wg_keys().public),
        key=operator,
        env=env,
    )
    assert registered.exit_code == 0, registered.output
    node_id = node_id_of(operator.address, salt)

    before = await cli("rewards", "show", "--address", operator.address, env=env)
    assert before.exit_code == 0, before.output
    assert "has no rewards yet" in flat(before)

    cumulative: dict[str, int] = {
        operator.address: 12 * NDS + NDS // 2,
        Account.create().address: 3 * NDS,
    }
    posting = await post_epoch(services, 1, cumulative, published(1, cumulative), sender=sender)
    assert posting.status == "proposed"
    distributor = contract(w3, deployment, "RewardDistributor")
    valid_at = (await distributor.functions.pendingRoot().call())[4]

    shown = await cli("rewards", "show", "--address", operator.address, env=env)
    assert shown.exit_code == 0, shown.output
    said = flat(shown)
    assert "no rewards yet" not in said
    assert "pending (epoch 1)" in said
    assert "+12.5 NDS, claimable from" in said
    # (how far away it is depends on the session anvil's clock, which other tests move)
    assert f"claimable from {format_time(valid_at)} (" in said
    as_json = json.loads(
        (await cli("rewards", "show", "--address", operator.address, "--json", env=env)).stdout
    )
    assert as_json["pending"] == {
        "epoch": 1,
        "amount": str(12 * NDS + NDS // 2),
        "cumulative": str(12 * NDS + NDS // 2),
        "claimable_at": valid_at,
    }

    status = await cli("node", "status", node_id, "--json", env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["rewards"]["pending"]["claimable_at"] == valid_at
    assert "+12.5 NDS, claimable from" in flat(await cli("node", "status", node_id, env=env))

    # Accepted: claimable now, nothing pending any more.
    await accept(services, sender, w3, deployment)
    after = json.loads(
        (await cli("rewards", "show", "--address", operator.address, "--json", env=env)).stdout
    )
    assert after["claimable"] == str(12 * NDS + NDS // 2)
    assert after["pending"] is None
