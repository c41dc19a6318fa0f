"""`nodus subscribe` and `nodus renew`: one transaction pays for whole periods.

With NDS, `SubscriptionManager.subscribeWithPermit` carries an EIP-2612 permit signed for
`max price x months`, so no separate approve is sent. With ETH (`--with-eth`),
`NodusSwap.buySubscriptionWithETH` swaps and pays at once: the ETH sent is the swap's quote plus
`--slippage` percent (the contract refunds what it does not use) and the transaction carries a
deadline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from nodus_cli.subscriber.onchain import Subscription, read_subscription
from nodus_cli.support.chain import Chain, connect, events_in, rpc, run, send
from nodus_cli.support.exits import CliError, UsageError
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import (
    console,
    err_console,
    format_eth,
    format_nds,
    format_time,
)
from nodus_cli.support.parsing import parse_nds
from nodus_cli.support.wallet import load_account

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.types import TxReceipt

# A permit or ETH purchase that is not mined within this is void (the chain's clock).
DEADLINE_S: Final = 20 * 60
DEFAULT_SLIPPAGE: Final = "1"
MAX_SLIPPAGE: Final = Decimal(50)


def parse_slippage(text: str | Decimal) -> Decimal:
    if isinstance(text, Decimal):  # the default
        return text
    try:
        value = Decimal(text.strip().removesuffix("%"))
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a percentage (for example 1 or 0.5)") from None
    if not value.is_finite() or not 0 <= value <= MAX_SLIPPAGE:
        raise typer.BadParameter(f"{text!r}: the slippage is a percentage from 0 to {MAX_SLIPPAGE}")
    return value


MonthsOption = Annotated[
    int,
    typer.Option(
        "--months",
        "-m",
        min=1,
        help="Periods to buy (at most the contract's MAX_MONTHS per payment; see nodus plan).",
    ),
]
WithEthOption = Annotated[
    bool,
    typer.Option("--with-eth", help="Pay with ETH through NodusSwap (swap and pay at once)."),
]
MaxPriceOption = Annotated[
    int | None,
    typer.Option(
        "--max-price",
        parser=parse_nds,
        metavar="NDS",
        help="Refuse if the price per period is above this (NDS); the contract checks it too.",
    ),
]
SlippageOption = Annotated[
    Decimal,
    typer.Option(
        "--slippage",
        parser=parse_slippage,
        metavar="PCT",
        help="With --with-eth: send at most the quote plus this percent of ETH.",
    ),
]


@dataclass(frozen=True, slots=True)
class Payment:
    months: int
    paid_nds: int
    paid_eth: int | None
    old_expiry: int
    new_expiry: int
    tx_hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "months": self.months,
            "paid_nds_wei": str(self.paid_nds),
            "paid_eth_wei": None if self.paid_eth is None else str(self.paid_eth),
            "old_expiry": self.old_expiry or None,
            "new_expiry": self.new_expiry,
            "tx_hash": self.tx_hash,
        }


def _check_price(subscription: Subscription, max_price: int | None, months: int) -> int:
    """The maxPrice to pass: `--max-price`, refused if the chain's price is above it; else the
    price just read (a price raised in flight reverts instead of charging more)."""
    if max_price is None:
        return subscription.price
    if subscription.price > max_price:
        raise CliError(
            f"the price is {format_nds(subscription.price)} per period, above your --max-price "
            f"{format_nds(max_price)}; nothing was sent",
            next_step="check `nodus plan`, then raise --max-price or wait",
        )
    return max_price


async def pay_with_nds(
    chain: Chain, account: LocalAccount, subscription: Subscription, months: int, max_price: int
) -> TxReceipt:
    token = chain.contract("NDSToken")
    manager = chain.contract("SubscriptionManager")
    cost = subscription.price * months
    balance = int(await rpc(chain, token.functions.balanceOf(account.address).call()))
    if balance < cost:
        raise CliError(
            f"{account.address} holds {format_nds(balance)}; {months} period(s) cost "
            f"{format_nds(cost)}",
            next_step=f"buy NDS, or pay with ETH: nodus subscribe --months {months} --with-eth",
        )
    deadline = await chain.now() + DEADLINE_S
    value = max_price * months
    nonce = int(await rpc(chain, token.functions.nonces(account.address).call()))
    _, name, version, chain_id, verifying, _, _ = await rpc(
        chain, token.functions.eip712Domain().call()
    )
    permit = account.sign_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {
                "name": name,
                "version": version,
                "chainId": int(chain_id),
                "verifyingContract": verifying,
            },
            "message": {
                "owner": account.address,
                "spender": manager.address,
                "value": value,
                "nonce": nonce,
                "deadline": deadline,
            },
        }
    )
    call = manager.functions.subscribeWithPermit(
        account.address,
        months,
        max_price,
        deadline,
        permit.v,
        permit.r.to_bytes(32, "big"),
        permit.s.to_bytes(32, "big"),
    )
    return await send(chain, account, call, f"subscribe {months} period(s) (NDS, with a permit)")


async def pay_with_eth(
    chain: Chain, account: LocalAccount, subscription: Subscription, months: int, slippage: Decimal
) -> tuple[TxReceipt, int]:
    swap = chain.contract("NodusSwap")
    cost = subscription.price * months
    quote = int(await rpc(chain, swap.functions.getAmountIn(cost, True).call()))
    bound = int((Decimal(quote) * (1 + slippage / 100)).to_integral_value(ROUND_CEILING))
    balance = int(await rpc(chain, chain.w3.eth.get_balance(account.address)))
    if balance < bound:
        raise CliError(
            f"{account.address} holds {format_eth(balance)}; the swap "
            f"may take up to {format_eth(bound)} plus gas",
            next_step="fund the wallet with ETH, or pay with NDS (without --with-eth)",
        )
    err_console.print(
        f"quote: {format_eth(quote)} for {format_nds(cost)}; "
        f"sending at most {format_eth(bound)} ({slippage}% slippage)"
    )
    deadline = await chain.now() + DEADLINE_S
    call = swap.functions.buySubscriptionWithETH(months, deadline)
    receipt = await send(chain, account, call, f"buy {months} period(s) with ETH", value=bound)
    bought = events_in(receipt, swap.events.SubscriptionBought())
    eth_in = int(bought[0]["args"]["ethPaid"]) if bought else bound
    return receipt, eth_in


async def subscribe_now(
    options: Options,
    months: int,
    *,
    with_eth: bool,
    max_price: int | None,
    slippage: Decimal,
) -> Payment:
    """Pays `months` periods for the wallet in one transaction and reads the new expiry from
    the receipt's Subscribed event. (`nodus up --subscribe` calls this too.)"""
    chain = await connect(options.rpc_url, options.deployments_dir)
    account = load_account(options.key_file)
    subscription = await read_subscription(chain, account.address)
    if months > subscription.max_months:
        raise UsageError(
            f"--months {months}: the contract takes at most {subscription.max_months} periods "
            "per payment",
            next_step=f"pay in parts: --months {subscription.max_months}, then renew",
        )
    chosen_max = _check_price(subscription, max_price, months)
    paid_eth: int | None = None
    if with_eth:
        receipt, paid_eth = await pay_with_eth(chain, account, subscription, months, slippage)
    else:
        receipt = await pay_with_nds(chain, account, subscription, months, chosen_max)
    manager = chain.contract("SubscriptionManager")
    events = [
        e
        for e in events_in(receipt, manager.events.Subscribed())
        if e["address"] == manager.address and e["args"]["subscriber"] == account.address
    ]
    if not events:
        raise CliError("the payment was mined but its Subscribed event is missing")
    args = events[0]["args"]
    return Payment(
        months=months,
        paid_nds=int(args["paid"]),
        paid_eth=paid_eth,
        old_expiry=subscription.expires_at,
        new_expiry=int(args["expiresAt"]),
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
    )


def _report(payment: Payment, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(payment.as_json()))
        return
    paid = format_nds(payment.paid_nds)
    if payment.paid_eth is not None:
        paid += f" (swapped from {format_eth(payment.paid_eth)})"
    console.print(f"paid {paid} for {payment.months} period(s)")
    console.print(f"expires {format_time(payment.new_expiry)}")


@shared_options("rpc_url", "deployments_dir", "key_file", "as_json")
def subscribe(
    months: MonthsOption = 1,
    with_eth: WithEthOption = False,
    max_price: MaxPriceOption = None,
    slippage: SlippageOption = Decimal(DEFAULT_SLIPPAGE),
    *,
    options: Options,
) -> None:
    """Pay for VPN access, in one transaction.

    Whole 30-day periods, added after your current expiry (or from now if none). With NDS
    the transaction carries a permit (no separate approve); with --with-eth it swaps ETH for
    the NDS and pays at once.

    Examples:

        nodus subscribe --months 3

        nodus subscribe --months 1 --max-price 10

        nodus subscribe --months 12 --with-eth --slippage 0.5
    """

    async def main() -> None:
        payment = await subscribe_now(
            options, months, with_eth=with_eth, max_price=max_price, slippage=slippage
        )
        _report(payment, options.as_json)

    run(main)


@shared_options("rpc_url", "deployments_dir", "key_file", "as_json")
def renew(
    months: MonthsOption = 1,
    with_eth: WithEthOption = False,
    max_price: MaxPriceOption = None,
    slippage: SlippageOption = Decimal(DEFAULT_SLIPPAGE),
    *,
    options: Options,
) -> None:
    """Extend your wallet's subscription (`nodus subscribe` for the current wallet).

    The periods are added after the current expiry, so nothing is lost by renewing early. A
    lapsed WireGuard device works again without a new config.

    Examples:

        nodus renew

        nodus renew --months 6 --with-eth
    """

    async def main() -> None:
        payment = await subscribe_now(
            options, months, with_eth=with_eth, max_price=max_price, slippage=slippage
        )
        if not options.as_json and payment.old_expiry:
            err_console.print(f"was {format_time(payment.old_expiry)}")
        _report(payment, options.as_json)

    run(main)
