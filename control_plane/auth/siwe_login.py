"""Checks a Sign-In with Ethereum (EIP-4361) message and its signature, strictly, with the `siwe`
library. Pure: no database, no network (the nonce is consumed by the service afterwards).

Two choices here are deliberate:
- The message is parsed with siwe's regular-expression grammar, not its ABNF parser: the ABNF
  parser is super-linear (hundreds of milliseconds of CPU for a 1-2 KB message), which on an
  unauthenticated route is a denial of service. Strictness comes back from requiring that the
  text round-trips: the message must be exactly what `prepare_message()` renders from the parsed
  fields, which is also the exact text siwe verifies the signature against.
- `verify()` gets no web3 provider, so it checks an EOA signature only: siwe's EIP-1271
  (contract wallet) fallback runs only when a provider is given, and a contract-wallet signature
  therefore can never stand in for a key's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError as EthValidationError
from siwe import ExpiredMessage, NotYetValidMessage, SiweMessage, VerificationError

from control_plane.errors import Unauthorized
from control_plane.settings import Settings

# Wallet clocks run a little ahead of ours; a message "issued" within this margin in the future
# is a clock difference, not a forgery (the single-use nonce is what stops replays).
CLOCK_SKEW = timedelta(seconds=30)


class _Message(Protocol):
    """What this module reads of a parsed `siwe.SiweMessage` (siwe ships no type hints)."""

    scheme: str | None
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    expiration_time: str | None
    not_before: str | None

    def prepare_message(self) -> str: ...

    def verify(self, signature: str, *, domain: str, timestamp: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class SignIn:
    """A message whose signature, domain, URI, chain and times all checked out."""

    address: str  # lower-case
    nonce: str


def verify_sign_in(message: str, signature: str, settings: Settings, now: datetime) -> SignIn:
    """The signer and nonce of a valid sign-in message, or Unauthorized saying what is wrong."""
    parsed = _parse(message)
    _check_audience(parsed, settings)
    _check_times(parsed, settings, now)
    try:
        # No `provider`: EOA signatures only (see the module docstring).
        parsed.verify(signature, domain=settings.siwe_domain, timestamp=now)
    except ExpiredMessage as exc:
        raise Unauthorized("the message has expired (Expiration Time); sign a new one") from exc
    except NotYetValidMessage as exc:
        raise Unauthorized("the message is not valid yet (Not Before)") from exc
    # eth-keys' BadSignature (an unrecoverable r/s) escapes siwe, so it is caught here too.
    except (VerificationError, BadSignature, EthValidationError, ValueError) as exc:
        raise Unauthorized("the signature does not match the message's address") from exc
    return SignIn(address=parsed.address.lower(), nonce=parsed.nonce)


def _parse(message: str) -> _Message:
    try:
        parsed: _Message = SiweMessage.from_message(message, abnf=False)
    except ValueError as exc:  # also pydantic's ValidationError (bad address, URI, date...)
        raise Unauthorized(
            "the message is not a valid EIP-4361 (Sign-In with Ethereum) message"
        ) from exc
    if parsed.prepare_message() != message:
        raise Unauthorized(
            "the message is not in the exact EIP-4361 layout; send the text exactly as signed"
        )
    return parsed


def _check_audience(parsed: _Message, settings: Settings) -> None:
    scheme = settings.public_url.split("://", 1)[0]
    if parsed.scheme is not None and parsed.scheme != scheme:
        raise Unauthorized(f"the message's scheme must be {scheme!r} (or absent)")
    if parsed.domain != settings.siwe_domain:
        raise Unauthorized(f"the message's domain must be {settings.siwe_domain!r}")
    if str(parsed.uri).rstrip("/") != settings.public_url.rstrip("/"):
        raise Unauthorized(f"the message's URI must be {settings.public_url!r}")
    if parsed.chain_id != settings.chain_id:
        raise Unauthorized(f"the message's chain ID must be {settings.chain_id}")


def _check_times(parsed: _Message, settings: Settings, now: datetime) -> None:
    issued_at = _instant(parsed.issued_at)
    if issued_at > now + CLOCK_SKEW:
        raise Unauthorized("the message's Issued At is in the future; check your clock")
    if issued_at < now - timedelta(seconds=settings.nonce_ttl_seconds) - CLOCK_SKEW:
        raise Unauthorized(
            f"the message was issued more than {settings.nonce_ttl_seconds} seconds ago; "
            "sign a new one"
        )
    if parsed.expiration_time is not None and _instant(parsed.expiration_time) <= now:
        raise Unauthorized("the message has expired (Expiration Time); sign a new one")
    if parsed.not_before is not None and _instant(parsed.not_before) > now:
        raise Unauthorized("the message is not valid yet (Not Before)")


def _instant(value: str) -> datetime:
    """An EIP-4361 timestamp (RFC 3339, so always with an offset; the grammar enforced it)."""
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is None:  # pragma: no cover - the grammar requires an offset
        raise Unauthorized("the message's timestamps need a time zone offset")
    return instant
