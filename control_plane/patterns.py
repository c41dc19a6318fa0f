"""The grammars of the API's structured strings and the bounds of its integers, in one place.

Each pattern is an ECMA-262 regular expression that is also valid for Pydantic's (Rust) regex
engine and Python's `re`: the OpenAPI document publishes exactly what the server checks first
(semantic checks, such as "a private network" or "not the zero key", come after and answer 422).
"""

from __future__ import annotations

from pydantic import BeforeValidator

# --- integers (PostgreSQL columns are BIGINT / INTEGER / SMALLINT) ------------------------------

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1  # BIGINT: counters, revisions, epochs


def _whole_number(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# JSON Schema's `integer` is any number without a fraction, so `2169.0` is one. Put before a
# strict int (which still refuses strings, booleans and fractions) so the server takes what
# the document allows.
WholeNumber = BeforeValidator(_whole_number)

# --- identifiers ---------------------------------------------------------------------------------

# bytes32 as 0x-hex: node ids (any case on input; the API answers lower-case).
NODE_ID = r"^0x[0-9a-fA-F]{64}$"
NODE_ID_LOWER = r"^0x[0-9a-f]{64}$"
# 20-byte Ethereum addresses (any case on input; the API answers lower-case).
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
ADDRESS_LOWER = r"^0x[0-9a-f]{40}$"
# 32-byte hashes (Merkle roots, keccak256 data hashes, transaction hashes), lower-case.
HASH32 = r"^0x[0-9a-f]{64}$"
# A 65-byte EOA signature (r, s, v) as 0x-hex: what personal_sign returns.
SIGNATURE = r"^0x[0-9a-fA-F]{130}$"

# --- keys and networks ---------------------------------------------------------------------------

# A Curve25519 key as `wg pubkey` prints it: canonical base64 of 32 bytes (the last character
# before the padding carries 4 bits, so only every fourth letter of the alphabet can end it).
WIREGUARD_KEY = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
# An X.509 certificate serial as lower- or upper-case hex.
CERT_SERIAL = r"^[0-9A-Fa-f]{1,64}$"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
# An IPv4 network in CIDR notation (`10.8.0.0/16`).
IPV4_CIDR = rf"^{IPV4}/([0-9]|[12][0-9]|3[0-2])$"
# An IPv6 network in CIDR notation (`fd12:3456:789a::/112`); the address part is checked by the
# server's parser after this shape check.
IPV6_CIDR = r"^[0-9a-fA-F:]{2,39}/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$"
# A device's tunnel address with its prefix: `10.8.0.2/32` or `fd00:8::2/128`.
TUNNEL_ADDRESS = rf"^({IPV4}/([0-9]|[12][0-9]|3[0-2])|[0-9a-fA-F:]{{2,39}}/[0-9]{{1,3}})$"

# --- amounts and cursors -------------------------------------------------------------------------

# An unsigned integer as a decimal string (token amounts in wei: uint256 has at most 78 digits).
WEI = r"^(0|[1-9][0-9]{0,77})$"
# A page cursor: opaque, URL-safe text the API returned as `next_cursor`.
CURSOR = r"^[A-Za-z0-9_=-]{1,200}$"
# An epoch-number cursor (the scores pages): a decimal epoch.
EPOCH_CURSOR = r"^(0|[1-9][0-9]{0,18})$"
