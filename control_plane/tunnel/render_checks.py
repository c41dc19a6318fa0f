"""Checks the config renderers run on every value they interpolate, whatever the database holds.

A client config is executable text for the subscriber's machine (`wg-quick` runs `PreUp` hooks
as root; OpenVPN runs `up` scripts): a value that could end a line or open a section must never
reach it. The API validates on the way in; these checks run again on the way out, so a row
written by an old release, a migration or a hand edit cannot inject a line either. A failed check
raises `UnsafeConfigValue` (the service answers 409 `node_misconfigured`) and nothing is written.
"""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from control_plane.tunnel.grammar import is_canonical_endpoint, parse_host

_NODE_ID = re.compile(r"0x[0-9a-f]{64}")
_BASE64_LINE = r"[A-Za-z0-9+/=]{1,76}"
_CERTIFICATE = re.compile(
    rf"-----BEGIN CERTIFICATE-----\n(?:{_BASE64_LINE}\n)+-----END CERTIFICATE-----\n?"
)
_TLS_CRYPT = re.compile(
    r"(?:#[ -~]*\n)*-----BEGIN OpenVPN Static key V1-----\n(?:[0-9a-f]{32}\n){16}"
    r"-----END OpenVPN Static key V1-----\n?"
)


class UnsafeConfigValue(ValueError):
    """A value the renderer refuses to write into a client config. The message names the field,
    never the value (it may be hostile)."""


def endpoint(value: object) -> str:
    if not isinstance(value, str) or not is_canonical_endpoint(value):
        raise UnsafeConfigValue("the node's endpoint is outside the endpoint grammar")
    return value


def host(value: object) -> str:
    try:
        if isinstance(value, str) and parse_host(_bracketed(value)) == value:
            return value
    except ValueError:
        pass
    raise UnsafeConfigValue("the node's host is outside the endpoint grammar")


def _bracketed(value: str) -> str:
    return f"[{value}]" if ":" in value else value


def port(value: object) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise UnsafeConfigValue("the node's port is not between 1 and 65535")
    return value


def interface_address(value: object) -> str:
    """An address with its prefix length, in canonical form (`10.8.0.7/32`)."""
    try:
        if (
            isinstance(value, str)
            and value.isascii()
            and str(ipaddress.ip_interface(value)) == value
        ):
            return value
    except ValueError:
        pass
    raise UnsafeConfigValue("a device address is not an IP address with a prefix length")


def ip_address(value: object) -> str:
    try:
        if isinstance(value, str) and value.isascii() and str(ipaddress.ip_address(value)) == value:
            return value
    except ValueError:
        pass
    raise UnsafeConfigValue("a DNS server is not an IP address")


def wireguard_key(value: object) -> str:
    from control_plane.tunnel.wireguard import check_public_key  # avoids an import cycle

    try:
        if isinstance(value, str) and value.isascii():
            return check_public_key(value)
    except ValueError:
        pass
    raise UnsafeConfigValue("the node's WireGuard public key is not a canonical base64 key")


def node_id(value: object) -> str:
    if not isinstance(value, str) or _NODE_ID.fullmatch(value) is None:
        raise UnsafeConfigValue("the node id is not 0x and 64 lower-case hex digits")
    return value


def certificate(value: object, what: str) -> str:
    """A single PEM certificate that parses; returned stripped."""
    if not isinstance(value, str) or _CERTIFICATE.fullmatch(value) is None:
        raise UnsafeConfigValue(f"the {what} is not a single PEM certificate")
    try:
        x509.load_pem_x509_certificate(value.encode())
    except ValueError as exc:
        raise UnsafeConfigValue(f"the {what} does not parse") from exc
    return value.strip()


def tls_crypt_key(value: object) -> str:
    if not isinstance(value, str) or _TLS_CRYPT.fullmatch(value) is None:
        raise UnsafeConfigValue("the node's tls-crypt key is not an OpenVPN static key")
    return value.strip()
