"""The strict grammars of the operator-controlled values that reach clients: a node's endpoint
and its country. One module, so the API (schemas), the renderers (tunnel/wireguard.py,
tunnel/openvpn.py), the out-of-service migration and the OpenAPI document share one rule.

Every check is `re.fullmatch` over explicit ASCII classes (never `$`, which also matches before
a trailing newline, and never `\\d`/`\\w`, which match non-ASCII digits and letters), followed by
`ipaddress` for the address forms. An endpoint is exactly one of:

- a DNS name: RFC 1123 labels (letters, digits, inner hyphens, 1-63 characters), dot-separated,
  at most 253 characters, the last label not all digits;
- an IPv4 address in dotted-quad form;
- a bracketed IPv6 address, without a zone id (`%eth0`);

then `:` and a port 1-65535 without leading zeros. A country is an officially assigned ISO
3166-1 alpha-2 code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

# The patterns as text, for JSON Schema (`pattern`) and documentation. Python code uses the
# compiled forms below with `fullmatch`.
LABEL_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"(?:{LABEL_PATTERN}\.)*{LABEL_PATTERN}"
IPV4_PATTERN = r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}" + (
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
)
BRACKETED_IPV6_PATTERN = r"\[[0-9A-Fa-f:.]{2,45}\]"
PORT_PATTERN = r"(?:[1-9][0-9]{0,4})"
ENDPOINT_PATTERN = rf"(?:{HOSTNAME_PATTERN}|{IPV4_PATTERN}|{BRACKETED_IPV6_PATTERN}):{PORT_PATTERN}"
COUNTRY_PATTERN = r"[A-Z]{2}"
MAX_HOSTNAME_LENGTH = 253
MAX_ENDPOINT_LENGTH = MAX_HOSTNAME_LENGTH + 1 + 5

_HOSTNAME = re.compile(HOSTNAME_PATTERN)
_IPV4 = re.compile(IPV4_PATTERN)
_BRACKETED_IPV6 = re.compile(BRACKETED_IPV6_PATTERN)
_PORT = re.compile(PORT_PATTERN)
_COUNTRY_INPUT = re.compile(r"[A-Za-z]{2}")
_ALL_DIGITS = re.compile(r"[0-9]+")

# ISO 3166-1 alpha-2, officially assigned codes.
_ISO_3166_ALPHA_2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO
    DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU
    GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW
    KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU
    MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
    PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA
    ZM ZW"""
COUNTRIES = frozenset(_ISO_3166_ALPHA_2.split())

ENDPOINT_HELP = (
    "endpoint: expected host:port, the host a DNS name (letters, digits, hyphens, dots), an "
    "IPv4 address or an IPv6 address in brackets without a zone id ([2001:db8::1]:51820), the "
    "port 1-65535"
)


def _is_ascii(value: str) -> bool:
    return isinstance(value, str) and value.isascii()


def parse_port(text: str) -> int:
    if not _is_ascii(text) or _PORT.fullmatch(text) is None or not 1 <= int(text) <= 65535:
        raise ValueError("endpoint: the port must be a number between 1 and 65535")
    return int(text)


def parse_host(host: str) -> str:
    """The host in canonical form (lower-case DNS name, compressed IP address, IPv6 without
    brackets). Raises ValueError for anything outside the grammar."""
    if not _is_ascii(host) or not host:
        raise ValueError(ENDPOINT_HELP)
    if _BRACKETED_IPV6.fullmatch(host) is not None:
        try:
            ipv6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ValueError("endpoint: not an IPv6 address in the brackets") from exc
        if ipv6.scope_id is not None:  # pragma: no cover - the character class has no `%`
            raise ValueError("endpoint: an IPv6 zone id is not allowed")
        if ipv6.is_unspecified or ipv6.is_multicast:
            raise ValueError("endpoint: not a unicast address")
        return str(ipv6)
    if _IPV4.fullmatch(host) is not None:
        ipv4 = ipaddress.IPv4Address(host)
        if ipv4.is_unspecified or ipv4.is_multicast:
            raise ValueError("endpoint: not a unicast address")
        return str(ipv4)
    if len(host) > MAX_HOSTNAME_LENGTH or _HOSTNAME.fullmatch(host) is None:
        raise ValueError(ENDPOINT_HELP)
    if _ALL_DIGITS.fullmatch(host.rsplit(".", 1)[-1]) is not None:
        raise ValueError("endpoint: the host is neither a DNS name nor an IPv4 address")
    return host.lower()


def parse_endpoint(value: str) -> tuple[str, int]:
    """`host:port` -> (canonical host, port); IPv6 hosts come back without brackets. Raises
    ValueError with a readable reason for anything outside the grammar."""
    if not _is_ascii(value) or len(value) > MAX_ENDPOINT_LENGTH:
        raise ValueError(ENDPOINT_HELP)
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ValueError(ENDPOINT_HELP)
    if ":" in host and not host.startswith("["):
        raise ValueError(ENDPOINT_HELP)  # an unbracketed IPv6 address
    port = parse_port(port_text)
    return parse_host(host), port


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def canonical_endpoint(value: str) -> str:
    return format_endpoint(*parse_endpoint(value))


def is_canonical_endpoint(value: str) -> bool:
    """Whether `value` is an endpoint exactly as the API stores it (what renderers demand)."""
    try:
        return canonical_endpoint(value) == value
    except ValueError:
        return False


def parse_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code (either case) -> upper case."""
    if not _is_ascii(value) or _COUNTRY_INPUT.fullmatch(value) is None:
        raise ValueError("country: an ISO 3166-1 alpha-2 country code, such as DE")
    upper = value.upper()
    if upper not in COUNTRIES:
        raise ValueError("country: not an assigned ISO 3166-1 alpha-2 code, such as DE")
    return upper


def is_canonical_country(value: str) -> bool:
    return (
        isinstance(value, str)
        and re.fullmatch(COUNTRY_PATTERN, value) is not None
        and (value in COUNTRIES)
    )


def stored_node_problem(endpoint: object, country: object) -> str | None:
    """Why a stored node's endpoint or country is outside the grammar (None: both are fine).
    For the out-of-service migration and for rendering."""
    if not isinstance(endpoint, str) or not is_canonical_endpoint(endpoint):
        return "its endpoint is outside the endpoint grammar"
    if not isinstance(country, str) or not is_canonical_country(country):
        return "its country is not an ISO 3166-1 alpha-2 code"
    return None


OPENVPN_DEFAULT_PORT = 1194  # IANA's; used when a node also serves WireGuard on `endpoint`


def openvpn_port_of(endpoint: str, protocols: Sequence[str], openvpn_port: int | None) -> int:
    """OpenVPN's port: `openvpn_port` if set, else the endpoint's port for an OpenVPN-only node,
    else 1194 (the endpoint's port is WireGuard's)."""
    if openvpn_port is not None:
        return openvpn_port
    if "wireguard" not in protocols:
        return parse_endpoint(endpoint)[1]
    return OPENVPN_DEFAULT_PORT
