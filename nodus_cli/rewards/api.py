"""The control plane's API as the rewards commands read it: errors with the API's own
message, and an address's rewards view (GET /v1/rewards/{address})."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import httpx
import typer

from nodus_cli.rewards.recompute import parse_wei as _wei
from nodus_cli.support.exits import Unreachable
from nodus_cli.support.output import (
    CliError,
    UsageError,
)
from nodus_cli.support.parsing import parse_address
from nodus_cli.support.session import api_message
from nodus_cli.support.wallet import load_account

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

API_TIMEOUT_S: Final = 30.0

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        parser=parse_address,
        metavar="ADDRESS",
        help="The operator (default: the address of your key).",
    ),
]


# --- the control plane's API --------------------------------------------------------------


class ApiNotFound(CliError):
    pass


async def api_get(api_url: str, path: str) -> httpx.Response:
    """GET `path` from the control plane; errors become CliErrors with the API's message."""
    url = api_url.rstrip("/") + path
    try:
        async with httpx.AsyncClient(timeout=API_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise Unreachable(
            f"cannot reach the Nodus API at {api_url}: {str(exc) or type(exc).__name__}",
            "start the control plane, or point --api-url (NODUS_API_URL) at a reachable one",
        ) from None
    if response.is_success:
        return response
    message = api_message(response)
    if response.status_code == 404:
        raise ApiNotFound(f"{url}: not found ({message})")
    raise CliError(f"the Nodus API answered {response.status_code} for {url}: {message}")


def _bytes32(value: object, field: str) -> bytes:
    if not isinstance(value, str) or len(value) != 66 or not value.startswith("0x"):
        raise ValueError(f"{field} is not a 0x-prefixed bytes32: {value!r}")
    return bytes.fromhex(value[2:])


@dataclass(frozen=True, slots=True)
class Rewards:
    """GET /v1/rewards/{address}."""

    cumulative: int
    claimed: int
    claimable: int
    epoch: int | None
    proof: list[bytes]

    @classmethod
    def parse(cls, body: object) -> Rewards:
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        proof = body.get("proof") or []
        if not isinstance(proof, list):
            raise ValueError("proof is not a list")
        epoch = body.get("epoch")
        return cls(
            cumulative=_wei(body.get("cumulative", "0"), "cumulative"),
            claimed=_wei(body.get("claimed", "0"), "claimed"),
            claimable=_wei(body.get("claimable", "0"), "claimable"),
            epoch=None if epoch is None else int(epoch),
            proof=[_bytes32(p, "proof") for p in proof],
        )


async def fetch_rewards(api_url: str, address: str) -> Rewards | None:
    """The API's view of `address`, or None when it has never earned anything."""
    try:
        response = await api_get(api_url, f"/v1/rewards/{address}")
    except ApiNotFound:
        return None
    try:
        return Rewards.parse(response.json())
    except ValueError as exc:
        raise CliError(f"the Nodus API's rewards answer is malformed: {exc}") from None


def address_of(address: str | None, key_file: Path | None) -> ChecksumAddress:
    from eth_utils.address import to_checksum_address

    if address:
        return to_checksum_address(address)
    try:
        return load_account(key_file).address
    except UsageError:
        raise UsageError("pass --address, or your key (--key-file or NODUS_PRIVATE_KEY)") from None
