"""`nodus plan`, `nodus subscribe` and `nodus renew` on the real contracts: the price and
period from the contract, a pending governance price change with its earliest execution,
payments in one transaction (NDS with a permit, ETH through the swap) whose expiry moves by
exactly the months bought, and a --max-price below the price refused before anything is sent."""

from __future__ import annotations

import json
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from control_plane.chain.contracts import Deployment, Web3Client, contract
from nodus_cli.subscriber.onchain import Subscription
from tests.cli.conftest import Cli, flat, proposal_id_of
from tests.support.builders import NDS, fresh_wallet

PERIOD = 30 * 86_400
PRICE = 10 * NDS  # the local deployment's price per period


def body(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


async def receipt_of(w3: Web3Client, tx_hash: str) -> Any:
    return await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]


async def block_time(w3: Web3Client, receipt: Any) -> int:
    return int((await w3.eth.get_block(receipt["blockNumber"]))["timestamp"])


async def test_plan_reads_the_contract_and_a_pending_price_proposal(
    cli: Cli, w3: Web3Client, deployment: Deployment, representative: LocalAccount
) -> None:
    wallet = await fresh_wallet(w3, deployment, 0)
    before = body(await cli("plan", "--json", key=wallet))
    assert before["price_per_period_wei"] == str(PRICE)
    assert before["period_seconds"] == PERIOD
    assert before["max_months"] == 36
    assert before["expires_at"] is None
    assert before["active"] is False
    assert before["pending_price_changes"] == []
    # Without any key yet, the plan alone.
    keyless = body(await cli("plan", "--json"))
    assert keyless["address"] is None
    assert keyless["price_per_period_wei"] == str(PRICE)

    proposed = await cli(
        "dao", "propose", "set-price", "12", "-d", "Price: 12 NDS", key=representative
    )
    assert proposed.exit_code == 0, proposed.output
    proposal_id = proposal_id_of(proposed)
    governor = contract(w3, deployment, "NodusGovernor")
    deadline = await governor.functions.proposalDeadline(proposal_id).call()
    delay = await contract(w3, deployment, "TimelockController").functions.getMinDelay().call()

    after = body(await cli("plan", "--json", key=wallet))
    assert after["pending_price_changes"] == [
        {
            "proposal_id": str(proposal_id),
            "state": "Pending",
            "new_price_wei": str(12 * NDS),
            "earliest_execution": deadline + 1 + delay,
        }
    ]
    shown = await cli("plan", key=wallet)
    assert shown.exit_code == 0, shown.output
    assert "price:   10 NDS per 30 d" in shown.stdout
    assert f"proposal {proposal_id} (Pending) would set the price to 12 NDS" in flat(shown)


async def test_subscribe_with_nds_then_renew_moves_the_expiry_by_exactly_the_months(
    cli: Cli, w3: Web3Client, deployment: Deployment
) -> None:
    wallet = await fresh_wallet(w3, deployment, 100 * NDS)
    manager = contract(w3, deployment, "SubscriptionManager")
    token = contract(w3, deployment, "NDSToken")

    paid = body(await cli("subscribe", "--months", "2", "--json", key=wallet))
    receipt = await receipt_of(w3, paid["tx_hash"])
    assert paid["new_expiry"] == await block_time(w3, receipt) + 2 * PERIOD
    assert paid["old_expiry"] is None
    assert paid["paid_nds_wei"] == str(2 * PRICE)
    assert await manager.functions.expiresAt(wallet.address).call() == paid["new_expiry"]
    # One transaction: the permit rode along (no approve was sent) and is used up.
    assert await w3.eth.get_transaction_count(wallet.address) == 1
    assert await token.functions.allowance(wallet.address, manager.address).call() == 0

    renewed = await cli("renew", "--months", "1", key=wallet)
    assert renewed.exit_code == 0, renewed.output
    assert "paid 10 NDS for 1 period(s)" in renewed.stdout
    expiry = await manager.functions.expiresAt(wallet.address).call()
    assert expiry == paid["new_expiry"] + PERIOD
    assert await token.functions.balanceOf(wallet.address).call() == 70 * NDS


async def test_subscribe_with_eth_pays_the_swap_within_the_slippage_and_refunds_the_rest(
    cli: Cli, w3: Web3Client, deployment: Deployment
) -> None:
    wallet = await fresh_wallet(w3, deployment, 0)  # 1 ETH, no NDS
    swap = contract(w3, deployment, "NodusSwap")
    quote = await swap.functions.getAmountIn(3 * PRICE, True).call()
    eth_before = await w3.eth.get_balance(wallet.address)

    paid = body(
        await cli(
            "subscribe", "--months", "3", "--with-eth", "--slippage", "2", "--json", key=wallet
        )
    )
    receipt = await receipt_of(w3, paid["tx_hash"])
    assert paid["new_expiry"] == await block_time(w3, receipt) + 3 * PERIOD
    manager = contract(w3, deployment, "SubscriptionManager")
    assert await manager.functions.expiresAt(wallet.address).call() == paid["new_expiry"]
    (bought,) = swap.events.SubscriptionBought().process_receipt(receipt, errors=DISCARD)
    assert paid["paid_eth_wei"] == str(bought["args"]["ethPaid"]) == str(quote)
    # The bound sent was quote * 1.02; the swap kept only its price and refunded the rest.
    sent = (await w3.eth.get_transaction(receipt["transactionHash"]))["value"]
    assert sent == -(-quote * 102 // 100)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await w3.eth.get_balance(wallet.address) == eth_before - quote - gas


async def test_a_max_price_below_the_price_is_refused_before_sending(
    cli: Cli, w3: Web3Client, deployment: Deployment
) -> None:
    wallet = await fresh_wallet(w3, deployment, 100 * NDS)
    refused = await cli("subscribe", "--months", "1", "--max-price", "9.99", key=wallet)
    assert refused.exit_code == 1
    text = flat(refused)
    assert "the price is 10 NDS per period, above your --max-price 9.99 NDS" in text
    assert "next: check `nodus plan`" in text
    assert await w3.eth.get_transaction_count(wallet.address) == 0

    accepted = await cli("subscribe", "--months", "1", "--max-price", "10", key=wallet)
    assert accepted.exit_code == 0, accepted.output

    poor = await fresh_wallet(w3, deployment, 5 * NDS)
    short = await cli("subscribe", "--months", "1", key=poor)
    assert short.exit_code == 1
    assert "nodus subscribe --months 1 --with-eth" in flat(short)
    bad = await cli("subscribe", "--months", "0", key=poor)
    assert bad.exit_code == 2
    too_many = await cli("subscribe", "--months", "37", key=poor)
    assert too_many.exit_code == 2
    assert "at most 36 periods per payment" in flat(too_many)


def test_status_warns_under_three_days_and_says_lapsed_after_the_expiry() -> None:
    wallet_address = Account.create().address

    def at(now: int) -> Subscription:
        return Subscription(wallet_address, PRICE, PERIOD, 36, expires_at=1_000_000, now=now)

    assert not at(1_000_000 - 3 * 86_400).expiring_soon
    assert at(1_000_000 - 3 * 86_400 + 1).expiring_soon
    assert at(999_999).active
    assert at(999_999).time_left == 1
    assert not at(1_000_000).active
    assert not at(1_000_000).expiring_soon
