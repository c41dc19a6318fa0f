"""`nodus status`: the subscription (from the chain), the devices (from the API) and the active
tunnel (the hook in tunnel_status.py)."""

from __future__ import annotations

import json

from nodus_cli.subscriber.devices import device_line, list_devices
from nodus_cli.subscriber.onchain import read_subscription
from nodus_cli.subscriber.tunnel_status import active_tunnel
from nodus_cli.support.chain import connect, run
from nodus_cli.support.exits import PaymentNeeded
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import console, duration, format_time
from nodus_cli.support.session import SUBSCRIBE_NEXT_STEP, ApiSession


@shared_options("rpc_url", "deployments_dir", "api_url", "key_file", "as_json")
def status(*, options: Options) -> None:
    """Show your subscription, your devices and the active tunnel.

    The subscription's expiry and time left are read from the contract (a warning under 3
    days). Exits 3 when the subscription is not active, so scripts can run
    `nodus status || nodus renew`.

    Examples:

        nodus status

        nodus status --json
    """

    async def main() -> None:
        chain = await connect(options.rpc_url, options.deployments_dir)
        async with ApiSession.open(options.api_url, options.key_file) as api:
            subscription = await read_subscription(chain, api.address)
            devices = await list_devices(api)
        tunnel = await active_tunnel(options)
        s = subscription
        if options.as_json:
            body = {
                "subscription": s.as_json(),
                "devices": devices,
                "tunnel": None if tunnel is None else tunnel.as_json(),
            }
            console.print_json(json.dumps(body))
        else:
            console.print(f"wallet:  {s.address}")
            if s.expires_at == 0:
                console.print("subscription: [red]never paid[/red]")
            elif s.active:
                console.print(
                    f"subscription: [green]active[/green] until {format_time(s.expires_at)} "
                    f"({duration(s.time_left)} left)"
                )
                if s.expiring_soon:
                    console.print(
                        "[yellow]warning:[/yellow] less than 3 days left; renew: nodus renew"
                    )
            else:
                console.print(
                    f"subscription: [red]lapsed[/red] since {format_time(s.expires_at, s.now)}"
                )
            console.print(f"devices: {len(devices)}")
            for item in devices:
                console.print("  " + device_line(item))
            for line in tunnel.lines() if tunnel else ["tunnel:  none (nodus up)"]:
                console.print(line)
        if not s.active:
            step = "nodus renew --months 1" if s.expires_at else SUBSCRIBE_NEXT_STEP
            raise PaymentNeeded(f"{s.address} has no active subscription", step)

    run(main)
