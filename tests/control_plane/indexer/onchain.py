"""Chain-side helpers for the indexer and subscription tests: fresh wallets, payments the way a
wallet makes them (approve + subscribe), governance calls through an impersonated timelock,
nodes registered on-chain, and the indexer/expiry jobs run the way the scheduler runs them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select, text
from web3.contract.async_contract import AsyncContractFunction
from web3.types import Nonce, TxParams, TxReceipt, Wei

from control_plane.chain.contracts import (
    Deployment,
    Web3Client,
    contract,
    new_node_salt,
    node_id_of,
)
from control_plane.db import unit_of_work
from control_plane.indexer.sync import sync_chain
from control_plane.jobs import Services, run_exclusive
from control_plane.subscriptions.expiry import expire_lapsed
from control_plane.subscriptions.models import Subscriber
from tests.support.devchain import dev_account, send_eth, transact

NDS = 10**18
PERIOD = 30 * 24 * 3600


async def fresh_wallet(
    w3: Web3Client, deployment: Deployment, nds: int = 100 * NDS
) -> LocalAccount:
    """A brand-new wallet holding 1 ETH for gas and `nds` NDS (so no test shares a subscriber)."""
    wallet: LocalAccount = Account.create()
    funder = dev_account(2)
    await send_eth(w3, funder, wallet.address, 10**18)
    token = contract(w3, deployment, "NDSToken")
    await transact(w3, funder, token.functions.transfer(wallet.address, nds))
    return wallet


async def approve_subscriptions(
    w3: Web3Client, deployment: Deployment, payer: LocalAccount
) -> None:
    token = contract(w3, deployment, "NDSToken")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    await transact(w3, payer, token.functions.approve(subscriptions.address, 2**256 - 1))


async def subscribe(
    w3: Web3Client,
    deployment: Deployment,
    payer: LocalAccount,
    months: int,
    beneficiary: str | None = None,
) -> TxReceipt:
    """`subscribe(beneficiary, months, price)` from `payer` (who has approved the contract)."""
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    price = await subscriptions.functions.pricePerPeriod().call()
    call = subscriptions.functions.subscribe(beneficiary or payer.address, months, price)
    return await transact(w3, payer, call)


async def pay(
    w3: Web3Client, deployment: Deployment, payer: LocalAccount, months: int
) -> TxReceipt:
    """approve + subscribe, as a wallet does it."""
    await approve_subscriptions(w3, deployment, payer)
    return await subscribe(w3, deployment, payer, months)


async def contract_expiry(w3: Web3Client, deployment: Deployment, address: str) -> int:
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    return int(await subscriptions.functions.expiresAt(w3.to_checksum_address(address)).call())


async def as_governance(
    w3: Web3Client, deployment: Deployment, call: AsyncContractFunction
) -> None:
    """Sends `call` from the timelock (which owns every parameter), impersonated on anvil."""
    timelock = deployment.addresses["TimelockController"]
    await w3.provider.make_request("anvil_impersonateAccount", [timelock])
    await w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])
    try:
        tx: Any = await call.build_transaction({"from": timelock})
        tx_hash = await w3.eth.send_transaction(tx)
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1
    finally:
        await w3.provider.make_request("anvil_stopImpersonatingAccount", [timelock])


async def mine(w3: Web3Client, blocks: int = 1) -> None:
    for _ in range(blocks):
        await w3.provider.make_request("evm_mine", [])


async def head(w3: Web3Client) -> int:
    return int(await w3.eth.block_number)


async def sync(services: Services) -> None:
    """One chain-sync run, as the scheduler runs it."""
    assert await run_exclusive(services, "chain_sync", sync_chain)


async def expire(services: Services) -> None:
    """One expiry run, as the scheduler runs it."""
    assert await run_exclusive(services, "expiry", expire_lapsed)


async def register_node(
    w3: Web3Client, deployment: Deployment, operator: LocalAccount, stake: int
) -> tuple[bytes, TxReceipt]:
    """Registers a new node (its id derived from the operator and a fresh salt): its id and
    the registration's receipt."""
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, token.functions.approve(registry.address, stake))
    agent = Account.create().address
    salt = new_node_salt()
    receipt = await transact(
        w3, operator, registry.functions.register(salt, stake, agent, "ipfs://node")
    )
    return bytes.fromhex(node_id_of(operator.address, salt)[2:]), receipt


async def node_with_config(services: Services, node_id: str, subscriber: str) -> None:
    """A node row and a live config of `subscriber` on it, written directly (the configs API
    belongs to another domain; plain SQL, so columns other domains add do not matter here)."""
    async with unit_of_work(services.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO nodes (id, operator, protocols, endpoint, country, ipv4_pool,"
                " ipv6_pool, revision) VALUES (:id, :operator, ARRAY['wireguard'],"
                " 'vpn.example.net:51820', 'DE', '10.8.0.0/16', 'fd00:8::/64', 0)"
                " ON CONFLICT (id) DO NOTHING"
            ),
            {"id": node_id, "operator": "0x" + "11" * 20},
        )
        count = int(
            await session.scalar(
                text("SELECT count(*) FROM device_configs WHERE node_id = :n"), {"n": node_id}
            )
            or 0
        )
        await session.execute(
            text(
                "INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key, ipv4,"
                " ipv6) VALUES (:id, :node, :subscriber, 'wireguard', :key, :ipv4, :ipv6)"
            ),
            {
                "id": uuid.uuid4(),
                "node": node_id,
                "subscriber": subscriber.lower(),
                "key": f"{count:043d}=",
                "ipv4": f"10.8.0.{count + 2}",
                "ipv6": f"fd00:8::{count + 2:x}",
            },
        )


async def revision(services: Services, node_id: str) -> int:
    async with unit_of_work(services.sessions) as session:
        value = await session.scalar(
            text("SELECT revision FROM nodes WHERE id = :id"), {"id": node_id}
        )
        assert value is not None
        return int(value)


async def stored_expiry(services: Services, address: str) -> datetime | None:
    async with unit_of_work(services.sessions) as session:
        return await session.scalar(
            select(Subscriber.expires_at).where(Subscriber.address == address.lower())
        )


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def signed_subscribe(
    w3: Web3Client, deployment: Deployment, user: LocalAccount, months: int, nonce: int
) -> str:
    """A signed subscribe transaction (raw, 0x-hex) for anvil_reorg to include."""
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    price = await subscriptions.functions.pricePerPeriod().call()
    params: TxParams = {
        "from": user.address,
        "nonce": Nonce(nonce),
        "gas": 200_000,
        "maxFeePerGas": Wei(10**11),
        "maxPriorityFeePerGas": Wei(10**9),
        "chainId": 31337,
    }
    call = subscriptions.functions.subscribe(user.address, months, price)
    tx: Any = await call.build_transaction(params)
    return "0x" + bytes(user.sign_transaction(tx).raw_transaction).hex()


async def reorg(w3: Web3Client, depth: int, txs: list[tuple[str, int]] | None = None) -> None:
    """Replaces the newest `depth` blocks (with `txs`: (raw tx, block offset) pairs)."""
    response = await w3.provider.make_request(
        "anvil_reorg",
        [depth, [[raw, offset] for raw, offset in (txs or [])]],
    )
    assert "error" not in response, response
