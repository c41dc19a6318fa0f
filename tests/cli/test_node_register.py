"""`nodus node register` from zero on the real stack (anvil with the real contracts, the control
plane in its own process on PostgreSQL): approve, register on-chain, POST /v1/nodes signed in
with the operator's wallet, wait for the index; a re-run is a no-op that says so; a run the API
refused after staking resumes without staking again; bad input is refused before any
transaction."""

from __future__ import annotations

import re

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client, contract, node_id_of
from tests.cli.conftest import Cli, flat
from tests.e2e.stack import ControlPlane
from tests.support.builders import MIN_STAKE, NDS, fresh_wallet, wg_keys
from tests.support.devchain import transact


def register_args(endpoint: str, salt: bytes, agent: str, key: str, *extra: str) -> tuple[str, ...]:
    return (
        "node", "register",
        "--endpoint", endpoint,
        "--country", "de",
        "--protocols", "wireguard",
        "--agent", agent,
        "--salt", "0x" + salt.hex(),
        "--wireguard-key", key,
        *extra,
    )  # fmt: skip


async def nonce(w3: Web3Client, account: LocalAccount) -> int:
    return int(await w3.eth.get_transaction_count(account.address))


async def api_node(control_plane: ControlPlane, node_id: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"{control_plane.url}/v1/nodes/{node_id}")


async def test_register_from_zero_then_a_rerun_is_a_no_op(
    cli: Cli, w3: Web3Client, deployment: Deployment, control_plane: ControlPlane
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    agent = Account.create().address
    salt = bytes(range(32))
    key = wg_keys().public
    node_id = node_id_of(operator.address, salt)
    args = register_args("198.51.100.7:51820", salt, agent, key)
    env: dict[str, str | None] = {"NODUS_API_URL": control_plane.url}

    first = await cli(*args, key=operator, env=env)

    assert first.exit_code == 0, first.output
    said = flat(first)
    assert "approve 100 NDS for NodeRegistry" in said
    assert "register the node on-chain with 100 NDS staked" in said
    assert "registered with the control plane" in said
    assert "indexed by the control plane" in said
    assert f"node id: {node_id}" in first.stdout
    assert "nodus-agent run" in first.stdout
    registry = contract(w3, deployment, "NodeRegistry")
    on_chain = await registry.functions.getNode(bytes.fromhex(node_id[2:])).call()
    assert on_chain[0] == operator.address
    assert on_chain[1] == agent
    assert on_chain[2] == MIN_STAKE
    assert on_chain[3] == 1
    record = (await api_node(control_plane, node_id)).json()
    assert record["endpoint"] == "198.51.100.7:51820"
    assert record["country"] == "DE"
    assert record["wireguard_public_key"] == key

    sent = await nonce(w3, operator)
    again = await cli(*args, key=operator, env=env)

    assert again.exit_code == 0, again.output
    said = flat(again)
    assert "already registered on-chain" in said
    assert "already registered with the control plane" in said
    assert "approve" not in said
    assert await nonce(w3, operator) == sent  # nothing sent


async def test_a_run_refused_by_the_api_after_staking_resumes_without_staking_again(
    cli: Cli, w3: Web3Client, deployment: Deployment, control_plane: ControlPlane
) -> None:
    env: dict[str, str | None] = {"NODUS_API_URL": control_plane.url}
    taken = "198.51.100.8:51820"
    first_operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    first = await cli(
        *register_args(taken, b"\x01" * 32, Account.create().address, wg_keys().public),
        key=first_operator,
        env=env,
    )
    assert first.exit_code == 0, first.output

    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    salt, agent, key = b"\x02" * 32, Account.create().address, wg_keys().public
    node_id = node_id_of(operator.address, salt)
    refused = await cli(*register_args(taken, salt, agent, key), key=operator, env=env)

    # Staked on-chain, then the API said no (the endpoint is another live node's).
    assert refused.exit_code == 1, refused.output
    said = flat(refused)
    assert "staked on-chain but the control plane refused it" in said
    assert "endpoint_in_use" in said
    assert "run this command again" in said
    assert (await api_node(control_plane, node_id)).status_code == 404
    sent = await nonce(w3, operator)

    resumed = await cli(
        *register_args("198.51.100.9:51820", salt, agent, key), key=operator, env=env
    )

    assert resumed.exit_code == 0, resumed.output
    said = flat(resumed)
    assert "already registered on-chain" in said
    assert "registered with the control plane" in said
    assert await nonce(w3, operator) == sent  # no second approve or register
    assert (await api_node(control_plane, node_id)).json()["endpoint"] == "198.51.100.9:51820"


async def test_an_existing_allowance_skips_the_approve(
    cli: Cli, w3: Web3Client, deployment: Deployment, control_plane: ControlPlane
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    # A run interrupted right after its approve was mined.
    await transact(w3, operator, token.functions.approve(registry.address, MIN_STAKE))

    result = await cli(
        *register_args(
            "198.51.100.10:51820", b"\x03" * 32, Account.create().address, wg_keys().public
        ),
        key=operator,
        env={"NODUS_API_URL": control_plane.url},
    )

    assert result.exit_code == 0, result.output
    said = flat(result)
    assert "no approve needed" in said
    assert "approve 100 NDS" not in said
    assert "register the node on-chain" in said


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"--endpoint": "vpn.example.net"}, "expected host:port"),
        ({"--endpoint": "vpn..example.net:51820"}, "endpoint"),
        ({"--endpoint": "host:70000"}, "port"),
        ({"--country": "XX"}, "not an assigned ISO 3166-1"),
        ({"--country": "Deutschland"}, "alpha-2"),
        ({"--protocols": "wireguard,ipsec"}, "expected wireguard, openvpn"),
        ({"--protocols": "wireguard,wireguard"}, "each once"),
        ({"--agent": "0x1234"}, "not an address"),
        ({"--salt": "0x12"}, "not a bytes32"),
        ({"--wireguard-key": "not-a-key"}, "not a WireGuard public key"),
        ({"--stake": "1e3"}, "not an NDS amount"),
        ({"--stake": "1"}, "below NodeRegistry's minimum"),
    ],
)
async def test_bad_input_is_refused_before_any_transaction(
    cli: Cli,
    w3: Web3Client,
    deployment: Deployment,
    control_plane: ControlPlane,
    change: dict[str, str],
    complaint: str,
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    values = {
        "--endpoint": "198.51.100.11:51820",
        "--country": "DE",
        "--protocols": "wireguard",
        "--agent": Account.create().address,
        "--salt": "0x" + "04" * 32,
        "--wireguard-key": wg_keys().public,
        **change,
    }
    args = [word for pair in values.items() for word in pair]
    sent = await nonce(w3, operator)

    result = await cli(
        "node", "register", *args, key=operator, env={"NODUS_API_URL": control_plane.url}
    )

    assert result.exit_code == 2, result.output
    assert complaint in flat(result)
    assert "Traceback" not in result.output
    assert await nonce(w3, operator) == sent


async def test_without_the_agent_it_says_to_run_nodus_agent_init_first(cli: Cli) -> None:
    result = await cli(
        "node", "register", "--endpoint", "198.51.100.12:51820", "--country", "DE",
        "--protocols", "wireguard",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "nodus-agent init --operator" in flat(result)


async def test_without_a_salt_a_fresh_one_is_printed_first_and_resumes_the_node(
    cli: Cli, w3: Web3Client, deployment: Deployment, control_plane: ControlPlane
) -> None:
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    agent, key = Account.create().address, wg_keys().public
    args = [
        "node", "register", "--endpoint", "198.51.100.13:51820", "--country", "DE",
        "--protocols", "wireguard", "--agent", agent, "--wireguard-key", key,
    ]  # fmt: skip
    env: dict[str, str | None] = {"NODUS_API_URL": control_plane.url}

    first = await cli(*args, key=operator, env=env)

    assert first.exit_code == 0, first.output
    match = re.search(r"new salt (0x[0-9a-f]{64}) \(node id (0x[0-9a-f]{64})\)", flat(first))
    assert match, first.output
    salt, node_id = match.groups()
    assert node_id == node_id_of(operator.address, bytes.fromhex(salt[2:]))
    assert f"nodus-agent init --node-id {node_id}" in flat(first)
    assert f"nodus node set-agent {node_id}" in flat(first)

    again = await cli(*args, "--salt", salt, key=operator, env=env)

    assert again.exit_code == 0, again.output
    assert "already registered on-chain" in flat(again)
    assert "already registered with the control plane" in flat(again)
