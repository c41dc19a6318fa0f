"""The path every later issue builds on: a real anvil, the contracts deployed by scripts/deploy,
and web3.py paying for a subscription the way a wallet would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.paths import REPO_ROOT
from tests.support.devchain import Anvil, dev_account, send_eth, transact

NDS = 10**18
PERIOD = 30 * 24 * 3600


async def fund_fresh_account(w3: Web3Client, deployment: Deployment, nds: int) -> LocalAccount:
    """A brand-new wallet holding 1 ETH for gas and `nds` NDS from a dev account."""
    fresh: LocalAccount = Account.create()
    funder = dev_account(2)
    await send_eth(w3, funder, fresh.address, 10**18)
    token = contract(w3, deployment, "NDSToken")
    await transact(w3, funder, token.functions.transfer(fresh.address, nds))
    return fresh


async def test_fresh_account_subscribes_and_expiry_is_exact(
    w3: Web3Client, deployment: Deployment
) -> None:
    token = contract(w3, deployment, "NDSToken")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    user = await fund_fresh_account(w3, deployment, 100 * NDS)
    price = await subscriptions.functions.pricePerPeriod().call()
    assert price == 10 * NDS
    assert await subscriptions.functions.isActive(user.address).call() is False

    await transact(w3, user, token.functions.approve(subscriptions.address, 3 * price))
    receipt = await transact(w3, user, subscriptions.functions.subscribe(user.address, 3, price))

    block = await w3.eth.get_block(receipt["blockNumber"])
    expiry = await subscriptions.functions.expiresAt(user.address).call()
    assert expiry == block["timestamp"] + 3 * PERIOD
    assert await subscriptions.functions.isActive(user.address).call() is True
    assert await token.functions.balanceOf(user.address).call() == 70 * NDS
    (event,) = subscriptions.events.Subscribed().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["subscriber"] == user.address
    assert event["args"]["payer"] == user.address
    assert event["args"]["months"] == 3
    assert event["args"]["paid"] == 30 * NDS
    assert event["args"]["expiresAt"] == expiry


async def test_renewal_extends_expiry_within_gas_target(
    w3: Web3Client, deployment: Deployment
) -> None:
    token = contract(w3, deployment, "NDSToken")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    user = await fund_fresh_account(w3, deployment, 100 * NDS)
    price = await subscriptions.functions.pricePerPeriod().call()
    await transact(w3, user, token.functions.approve(subscriptions.address, 100 * NDS))
    await transact(w3, user, subscriptions.functions.subscribe(user.address, 1, price))
    before = await subscriptions.functions.expiresAt(user.address).call()

    receipt = await transact(w3, user, subscriptions.functions.subscribe(user.address, 2, price))

    assert await subscriptions.functions.expiresAt(user.address).call() == before + 2 * PERIOD
    print(f"renewal receipt gas: {receipt['gasUsed']}")
    assert receipt["gasUsed"] <= 65_000


async def test_price_above_max_reverts_with_custom_error_and_charges_nothing(
    w3: Web3Client, deployment: Deployment
) -> None:
    token = contract(w3, deployment, "NDSToken")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    user = await fund_fresh_account(w3, deployment, 100 * NDS)
    price = await subscriptions.functions.pricePerPeriod().call()
    await transact(w3, user, token.functions.approve(subscriptions.address, 100 * NDS))

    with pytest.raises(ContractCustomError) as raised:
        await subscriptions.functions.subscribe(user.address, 1, price - 1).call(
            {"from": user.address}
        )

    selector = AsyncWeb3.keccak(text="PriceAboveMax(uint256,uint256)")[:4].hex()
    assert selector in str(raised.value.data)
    assert await token.functions.balanceOf(user.address).call() == 100 * NDS
    assert await subscriptions.functions.expiresAt(user.address).call() == 0


async def test_deployment_wires_governance_and_funds_dev_accounts(
    w3: Web3Client, deployment: Deployment
) -> None:
    token = contract(w3, deployment, "NDSToken")
    timelock = contract(w3, deployment, "TimelockController")
    governor = contract(w3, deployment, "NodusGovernor")
    rewards = contract(w3, deployment, "RewardDistributor")
    registry = contract(w3, deployment, "NodeRegistry")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    deployer, oracle = dev_account(0), dev_account(1)

    assert await subscriptions.functions.owner().call() == timelock.address
    assert await registry.functions.owner().call() == timelock.address
    admin_role = await timelock.functions.DEFAULT_ADMIN_ROLE().call()
    proposer_role = await timelock.functions.PROPOSER_ROLE().call()
    assert not await timelock.functions.hasRole(admin_role, deployer.address).call()
    assert await timelock.functions.hasRole(proposer_role, governor.address).call()
    assert not await timelock.functions.hasRole(proposer_role, deployer.address).call()
    oracle_role = await rewards.functions.ORACLE_ROLE().call()
    assert await rewards.functions.hasRole(oracle_role, oracle.address).call()
    assert await rewards.functions.hasRole(admin_role, timelock.address).call()
    assert await token.functions.balanceOf(rewards.address).call() == 1_000_000 * NDS
    assert await token.functions.CLOCK_MODE().call() == "mode=timestamp"
    assert await registry.functions.minStake().call() == 100 * NDS
    unbonding = await registry.functions.unbondingPeriod().call()
    challenge = await rewards.functions.challengePeriod().call()
    voting = await governor.functions.votingPeriod().call()
    assert unbonding > challenge + voting
    # Every dev account starts with 100,000 NDS (tests in this session may have spent some).
    assert await token.functions.balanceOf(dev_account(3).address).call() == 100_000 * NDS


def test_cli_lists_deployed_contracts(anvil: Anvil, deployments_dir: Path) -> None:
    nodus = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "nodus"
    result = subprocess.run(
        [str(nodus), "contracts", "--rpc-url", anvil.rpc_url],
        env={**os.environ, "NODUS_DEPLOYMENTS_DIR": str(deployments_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("NDSToken", "SubscriptionManager", "RewardDistributor", "NodusSwap"):
        assert name in result.stdout
    assert "none" not in result.stdout
