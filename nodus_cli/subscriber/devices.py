"""`nodus devices` and `nodus revoke`: the wallet's device configs on the control plane."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Final

import typer
from rich.markup import escape

from nodus_cli.support.chain import run
from nodus_cli.support.exits import CliError
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import console, err_console
from nodus_cli.support.session import ApiNotFound, ApiSession, JsonObject

PAGE: Final = 100
MAX_DEVICES: Final = 1_000


def parse_config_id(text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a device id (a UUID, as `nodus devices` lists them)"
        ) from None


AllOption = Annotated[bool, typer.Option("--all", help="Also list revoked devices.")]
ConfigIdArgument = Annotated[
    str, typer.Argument(parser=parse_config_id, metavar="ID", show_default=False)
]


async def list_devices(api: ApiSession, *, include_revoked: bool = False) -> list[JsonObject]:
    """The wallet's configs, oldest first, each with `status` (active, lapsed, revoked; an
    older API without it: derived from `revoked_at`, else "unknown")."""
    params: dict[str, Any] = {"limit": PAGE}
    if include_revoked:
        params["include_revoked"] = "true"
    found: list[JsonObject] = []
    while len(found) < MAX_DEVICES:
        page = await api.get("/v1/configs", params=params)
        found.extend(item for item in page.get("items", []) if isinstance(item, dict))
        cursor = page.get("next_cursor")
        if not cursor:
            break
        params["cursor"] = cursor
    for item in found:
        if "status" not in item:
            item["status"] = "revoked" if item.get("revoked_at") else "unknown"
    return found


# Revocations the device's owner did not make (the API's `revoked_reason`).
TAKEN_AWAY: Final = ("protocol_dropped", "node_deleted")


def device_line(item: JsonObject) -> str:
    """One device as a line of rich markup (the API's values escaped, never markup)."""
    node = escape(str(item.get("node_id", "")))
    addresses = escape(", ".join(str(a) for a in item.get("address", [])))
    plain = str(item["status"])
    if item.get("revoked_reason") in TAKEN_AWAY:
        addresses += f"  ({escape(str(item['revoked_reason']).replace('_', ' '))})"
    style = {"active": "green", "lapsed": "yellow", "revoked": "red"}.get(plain, "default")
    status = f"[{style}]{escape(plain)}[/{style}]" + " " * max(0, 7 - len(plain))
    device, protocol = escape(str(item.get("id"))), escape(str(item.get("protocol")))
    return f"{device}  {status}  {protocol:<9}  node {node[:10]}…  {addresses}"


@shared_options("api_url", "key_file", "as_json")
def devices(include_revoked: AllOption = False, *, options: Options) -> None:
    """List your devices (the configs issued to your wallet).

    Each: id, status (active; lapsed: the subscription ended, `nodus renew`; revoked, with
    --all, and why when its node's operator did it), protocol, node and tunnel addresses.

    Examples:

        nodus devices

        nodus devices --all --json
    """

    async def main() -> None:
        async with ApiSession.open(options.api_url, options.key_file) as api:
            items = await list_devices(api, include_revoked=include_revoked)
        if options.as_json:
            console.print_json(json.dumps({"items": items}))
            return
        if not items:
            console.print("no devices (nodus up creates one)")
        for item in items:
            console.print(device_line(item))
        if any(item["status"] == "lapsed" for item in items):
            err_console.print("[yellow]lapsed devices work again after: nodus renew[/yellow]")
        if any(item.get("revoked_reason") in TAKEN_AWAY for item in items):
            err_console.print(
                "[yellow]some devices were revoked by their node's operator (protocol turned "
                "off, or node deleted): get a new config with nodus up[/yellow]"
            )

    run(main)


@shared_options("api_url", "key_file", "as_json")
def revoke(config_id: ConfigIdArgument, *, options: Options) -> None:
    """Revoke one of your devices (its id is in `nodus devices`).

    The node drops it; an OpenVPN certificate joins the node's revocation list.

    Examples:

        nodus revoke 5b0c6f3e-8a51-4c1e-9a0b-2f8d6c1e7a42
    """

    async def main() -> None:
        async with ApiSession.open(options.api_url, options.key_file) as api:
            try:
                await api.delete(f"/v1/configs/{config_id}")
            except ApiNotFound:
                raise CliError(
                    f"no live device {config_id} of {api.address} (already revoked, or "
                    "another wallet's)",
                    next_step="list yours: nodus devices --all",
                ) from None
        if options.as_json:
            console.print_json(json.dumps({"id": config_id, "status": "revoked"}))
        else:
            console.print(f"revoked {config_id}")

    run(main)
