"""WireGuard configs: the key pair made here (X25519; the private key never leaves this host),
the issued wg-quick text with the key filled in, and its parts: what `wg setconf` takes
(`[Interface] PrivateKey` and the peers) and what wg-quick would have applied itself
(addresses, DNS, MTU), which `nodus up` applies with `ip`."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from nodus_cli.tunnel.system import TunnelError

PLACEHOLDER: Final = "<insert your private key>"
MIN_MTU, MAX_MTU = 1280, 9000
# wg-quick's keys that `wg setconf` does not understand.
_WG_QUICK_ONLY: Final = frozenset(
    {"address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig"}
)
_LINE = re.compile(r"([A-Za-z]+)\s*=\s*(.*)")


@dataclass(frozen=True, slots=True)
class KeyPair:
    private: str
    public: str


def new_key_pair() -> KeyPair:
    key = X25519PrivateKey.generate()
    raw_private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return KeyPair(base64.b64encode(raw_private).decode(), base64.b64encode(raw_public).decode())


def fill_private_key(config: str, private_key: str) -> str:
    if config.count(PLACEHOLDER) != 1:
        raise TunnelError("the issued config has no single private-key placeholder")
    return config.replace(PLACEHOLDER, private_key)


@dataclass(frozen=True, slots=True)
class WireGuardConfig:
    addresses: list[str]
    dns: list[str]
    mtu: int | None
    setconf: str  # the text `wg setconf` reads
    endpoints: list[str] = field(default_factory=list)
    # PersistentKeepalive set: the peer starts a handshake as soon as it is set, without traffic.
    keepalive: bool = False


def _checked(value: str, parse_as: Callable[[str], object], field: str) -> str:
    """`value` as its own canonical text, or a TunnelError: what reaches `ip` is an address."""
    try:
        return str(parse_as(value))
    except ValueError:
        raise TunnelError(f"the config's {field} {value[:60]!r} is not an address") from None


def parse(text: str) -> WireGuardConfig:
    """Reads the issued config; values applied by `ip` or written to resolv.conf are checked
    against their grammar first, so a hostile config cannot smuggle arguments or lines."""
    addresses: list[str] = []
    dns: list[str] = []
    endpoints: list[str] = []
    mtu: int | None = None
    keepalive = False
    kept: list[str] = []
    section = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.lower()
            kept.append(line)
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise TunnelError(f"the config has a line wg cannot read: {line[:60]!r}")
        key, value = match.group(1).lower(), match.group(2).strip()
        values = [v.strip() for v in value.split(",") if v.strip()]
        if section == "[interface]" and key == "address":
            addresses += [_checked(v, ipaddress.ip_interface, "Address") for v in values]
        elif section == "[interface]" and key == "dns":
            dns += [_checked(v, ipaddress.ip_address, "DNS") for v in values]
        elif section == "[interface]" and key == "mtu":
            if not value.isdigit() or not MIN_MTU <= int(value) <= MAX_MTU:
                raise TunnelError(f"the config's MTU {value[:20]!r} is not {MIN_MTU}-{MAX_MTU}")
            mtu = int(value)
        elif key in _WG_QUICK_ONLY:
            continue
        else:
            if key == "endpoint":
                endpoints.append(value)
            keepalive |= key == "persistentkeepalive" and value.lower() not in {"0", "off"}
            kept.append(line)
    return WireGuardConfig(addresses, dns, mtu, "\n".join(kept) + "\n", endpoints, keepalive)
