"""`nodus node update`: change the node's endpoint, country or protocols at the control plane
(PATCH /v1/nodes/{id}, signed in as the operator)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nodus_cli.node.inputs import (
    CountryOption,
    EndpointOption,
    NodeIdArgument,
    ProtocolsOption,
    parse_wireguard_key,
)
from nodus_cli.support.chain import run
from nodus_cli.support.options import Options, shared_options
from nodus_cli.support.output import UsageError, console, hex0x
from nodus_cli.support.session import ApiSession


@shared_options("key_file", "api_url", "as_json")
def update(
    node_id: NodeIdArgument,
    endpoint: EndpointOption = None,
    country: CountryOption = None,
    protocols: ProtocolsOption = None,
    wireguard_key: Annotated[
        str | None,
        typer.Option(
            "--wireguard-key",
            "--wireguard-public-key",
            parser=parse_wireguard_key,
            metavar="KEY",
            help="A new WireGuard public key (after `nodus-agent` made a new one).",
        ),
    ] = None,
    *,
    options: Options,
) -> None:
    """Change what the control plane tells subscribers about the node. Dropping a protocol
    revokes the node's live configs of it.

    Example: nodus node update 0x6e6f…a1 --endpoint 203.0.113.7:51820 --country NL
    """
    patch: dict[str, Any] = {}
    if endpoint is not None:
        patch["endpoint"] = endpoint
    if country is not None:
        patch["country"] = country
    if protocols is not None:
        patch["protocols"] = protocols.split(",")
    if wireguard_key is not None:
        patch["wireguard_public_key"] = wireguard_key
    shown = hex0x(node_id)

    async def main() -> dict[str, Any]:
        if not patch:
            raise UsageError(
                "nothing to change: give --endpoint, --country, --protocols or --wireguard-key"
            )
        async with ApiSession.open(options.api_url, options.key_file) as api:
            return await api.request("PATCH", f"/v1/nodes/{shown}", body=patch) or {}

    node = run(main)
    if options.as_json:
        console.print_json(data=node)
        return
    console.print(
        f"node {shown}: endpoint {node.get('endpoint')}, country {node.get('country')}, "
        f"protocols {','.join(node.get('protocols') or [])}"
    )
