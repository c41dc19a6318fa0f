"""What an operator types about a node, parsed with the API's own grammar before anything is
sent (a bad endpoint found after staking would be a wasted transaction): endpoint, country,
protocols, WireGuard key, salt and node id. Each raises `typer.BadParameter` (exit code 2)."""

from __future__ import annotations

import re
from typing import Annotated, Final

import typer

from nodus_cli.support.parsing import parse_bytes32

PROTOCOLS: Final = ("wireguard", "openvpn")


def parse_endpoint_option(text: str) -> str:
    from control_plane.tunnel.grammar import canonical_endpoint

    try:
        return canonical_endpoint(text.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_country_option(text: str) -> str:
    from control_plane.tunnel.grammar import parse_country

    try:
        return parse_country(text.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_protocols(text: str) -> str:
    """`wireguard`, `openvpn` or both, comma-separated, each once; returned in one order
    (`wireguard,openvpn`)."""
    chosen = [p.strip().lower() for p in text.split(",")]
    if not chosen or any(p not in PROTOCOLS for p in chosen) or len(set(chosen)) != len(chosen):
        raise typer.BadParameter(
            f"{text!r}: expected wireguard, openvpn or wireguard,openvpn (each once)"
        )
    return ",".join(p for p in PROTOCOLS if p in chosen)


def parse_wireguard_key(text: str) -> str:
    # The API's own grammar (control_plane.patterns loads pydantic: only when a key is checked).
    from control_plane.patterns import WIREGUARD_KEY

    value = text.strip()
    if not re.fullmatch(WIREGUARD_KEY, value):
        raise typer.BadParameter(
            f"{text!r} is not a WireGuard public key (44 characters of base64, as `wg pubkey` "
            "prints it; `nodus-agent init` prints the node's)"
        )
    if value == "A" * 43 + "=":
        raise typer.BadParameter("the all-zero key is not a WireGuard public key")
    return value


def parse_node_id(text: str) -> bytes:
    value = parse_bytes32(text)
    if not any(value):
        raise typer.BadParameter("the zero node id is not a node")
    return value


NodeIdArgument = Annotated[
    bytes,
    typer.Argument(
        parser=parse_node_id,
        metavar="NODE_ID",
        help="The node id (0x + 64 hex digits), as `nodus node register` printed it.",
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        parser=parse_endpoint_option,
        metavar="HOST:PORT",
        help="Public host:port clients connect to (WireGuard's UDP port).",
    ),
]
CountryOption = Annotated[
    str | None,
    typer.Option(
        "--country", parser=parse_country_option, metavar="CC", help="ISO 3166-1 alpha-2 code."
    ),
]
ProtocolsOption = Annotated[
    str | None,
    typer.Option(
        "--protocols",
        parser=parse_protocols,
        metavar="wireguard[,openvpn]",
        help="The protocols the node serves.",
    ),
]
