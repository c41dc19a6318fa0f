"""`nodus plan`."""

from __future__ import annotations

import json

from nodus_cli.subscriber.onchain import pending_price_changes, read_subscription
from nodus_cli.support.chain import connect, run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import console, duration, format_nds, format_time
from nodus_cli.support.wallet import address_of_key, has_key


@shared_options("rpc_url", "deployments_dir", "key_file", "as_json")
def plan(*, options: Options) -> None:
    """Show the price, the period, your expiry and pending price changes, from the chain.

    The price per period and the period's length come from the SubscriptionManager, your
    wallet's expiry too; any governance proposal not yet executed that would change the price
    is listed with the earliest time it could take effect.

    Examples:

        nodus plan

        nodus plan --json
    """

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        # No key yet: the plan alone.
        address = address_of_key(options.key_file) if has_key(options.key_file) else None
        subscription = await read_subscription(chain, address)
        changes = await pending_price_changes(chain)
        if options.as_json:
            body = {
                **subscription.as_json(),
                "pending_price_changes": [change.as_json() for change in changes],
            }
            console.print_json(json.dumps(body))
            return
        s = subscription
        console.print(
            f"price:   {format_nds(s.price)} per {duration(s.period)} (1 to {s.max_months} "
            "periods per payment)"
        )
        if s.address is None:
            console.print("wallet:  none (nodus account new, or --key-file)")
        elif s.expires_at == 0:
            console.print(f"wallet:  {s.address}")
            console.print("expiry:  never paid (nodus subscribe --months 1)")
        else:
            console.print(f"wallet:  {s.address}")
            state = "active" if s.active else "lapsed"
            console.print(f"expiry:  {format_time(s.expires_at, s.now)} ({state})")
        for change in changes:
            console.print(
                f"[yellow]pending:[/yellow] proposal {change.proposal_id} ({change.state}) "
                f"would set the price to {format_nds(change.new_price)}; earliest "
                f"{format_time(change.earliest_execution, s.now)}"
            )
        if not changes:
            console.print("pending: no proposal would change the price")

    run(main)
