"""Receipt gas of every hot path, measured on a fresh anvil with the real deployment.

    scripts/gas-report            prints a Markdown table (the README's gas table comes from it)

Receipt gas includes the 21,000 base and calldata, which forge's snapshot does not.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.rewards.formula.merkle import RewardTree
from tests.support.devchain import (
    advance_time,
    deploy,
    dev_account,
    running_anvil,
    send_eth,
    transact,
)

NDS = 10**18
DEADLINE = 2**63


async def measure(w3: Web3Client, deployment: Deployment) -> list[tuple[str, int, str]]:
    token = contract(w3, deployment, "NDSToken")
    subs = contract(w3, deployment, "SubscriptionManager")
    registry = contract(w3, deployment, "NodeRegistry")
    rewards = contract(w3, deployment, "RewardDistributor")
    swap = contract(w3, deployment, "NodusSwap")
    rows: list[tuple[str, int, str]] = []

    def record(name: str, receipt: dict[str, int] | object, target: str = "") -> None:
        rows.append((name, int(receipt["gasUsed"]), target))  # type: ignore[index]

    funder = dev_account(2)
    user: LocalAccount = Account.create()
    await send_eth(w3, funder, user.address, 10 * NDS)
    await transact(w3, funder, token.functions.transfer(user.address, 1_000 * NDS))
    price = await subs.functions.pricePerPeriod().call()
    await transact(w3, user, token.functions.approve(subs.address, 1_000 * NDS))
    record(
        "subscribe, new subscriber",
        await transact(w3, user, subs.functions.subscribe(user.address, 1, price)),
    )
    record(
        "subscribe, renewal",
        await transact(w3, user, subs.functions.subscribe(user.address, 1, price)),
        "<= 65,000",
    )

    operator = dev_account(3)
    await transact(w3, operator, token.functions.approve(registry.address, 100 * NDS))
    record(
        "NodeRegistry.register",
        await transact(
            w3,
            operator,
            registry.functions.register(b"\x01" * 32, 100 * NDS, dev_account(4).address, ""),
        ),
    )

    oracle, claimer = dev_account(1), dev_account(5)
    others = [("0x" + f"{i:040x}", i * 10**15) for i in range(1, 200)]
    challenge = await rewards.functions.challengePeriod().call()
    for epoch, amount in ((1, 100 * NDS), (2, 150 * NDS)):
        tree = RewardTree.build([(claimer.address, amount), *((a, v * epoch) for a, v in others)])
        total = sum(tree.amounts.values())
        record(
            f"proposeRoot (epoch {epoch}, 200 operators)",
            await transact(
                w3, oracle, rewards.functions.proposeRoot(epoch, tree.root, total, b"\x02" * 32)
            ),
            "<= 100,000",
        )
        await advance_time(w3, challenge)
        accepted = await transact(w3, funder, rewards.functions.acceptRoot())
        record(f"acceptRoot (epoch {epoch})", accepted)
        record(
            "claim, first" if epoch == 1 else "claim, later epoch",
            await transact(
                w3,
                claimer,
                rewards.functions.claim(claimer.address, amount, tree.proofs[claimer.address]),
            ),
            "<= 95,000" if epoch == 1 else "<= 62,000",
        )

    trader = dev_account(6)
    record(
        "swapExactETHForNDS",
        await transact(
            w3, trader, swap.functions.swapExactETHForNDS(1, trader.address, DEADLINE), NDS // 100
        ),
        "<= 80,000",
    )
    await transact(w3, trader, token.functions.approve(swap.address, 2**256 - 1))
    record(
        "swapExactNDSForETH (max allowance)",
        await transact(
            w3, trader, swap.functions.swapExactNDSForETH(10 * NDS, 1, trader.address, DEADLINE)
        ),
        "<= 80,000",
    )
    buyer: LocalAccount = Account.create()
    await send_eth(w3, funder, buyer.address, NDS)
    for label in ("buySubscriptionWithETH, new", "buySubscriptionWithETH, renewal"):
        record(
            label,
            await transact(
                w3, buyer, swap.functions.buySubscriptionWithETH(1, DEADLINE), NDS // 100
            ),
        )
    return rows


async def main() -> None:
    with running_anvil() as anvil, tempfile.TemporaryDirectory() as out:
        deploy(anvil.rpc_url, Path(out))
        w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(anvil.rpc_url))
        deployment = Deployment.for_chain(await w3.eth.chain_id, Path(out))
        rows = await measure(w3, deployment)
    print("| call | receipt gas | target |")
    print("| --- | ---: | --- |")
    for name, gas, target in rows:
        print(f"| {name} | {gas:,} | {target} |")


if __name__ == "__main__":
    asyncio.run(main())
