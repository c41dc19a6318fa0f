"""Strict parsers of the configs the API serves: they accept exactly the sections, keys,
directives and inline blocks the control plane means to write, each value in its own grammar
(written here independently of the production code), and nothing else. Every config a configs
test receives goes through them (see conftest.py), so no test can pass with an injected line."""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_WG_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]{1,64}")
_HEX_LINE = re.compile(r"[0-9a-f]{32}")
_NODE_CN = re.compile(r"[0-9a-f]{64}")
_PRINTABLE = re.compile(r"[ -~\n]*")  # printable ASCII and LF, nothing else


class UnexpectedConfig(AssertionError):
    pass


def _lines(text: str) -> list[str]:
    if _PRINTABLE.fullmatch(text) is None:
        raise UnexpectedConfig("the config has a character outside printable ASCII and LF")
    if not text.endswith("\n"):
        raise UnexpectedConfig("the config does not end with a newline")
    lines = text[:-1].split("\n")
    if lines != text.splitlines():  # no other line break (CR, U+2028, U+0085, ...) anywhere
        raise UnexpectedConfig("the config has a line break other than LF")
    return lines


def _host(value: str) -> None:
    if value.startswith("[") and value.endswith("]"):
        address = ipaddress.IPv6Address(value[1:-1])
        if str(address) != value[1:-1]:
            raise UnexpectedConfig(f"non-canonical IPv6 host {value!r}")
        return
    if _IPV4.fullmatch(value):
        if str(ipaddress.IPv4Address(value)) != value:
            raise UnexpectedConfig(f"non-canonical IPv4 host {value!r}")
        return
    if len(value) > 253 or _HOST.fullmatch(value) is None:
        raise UnexpectedConfig(f"not a host name {value!r}")


def _port(value: str) -> int:
    if _PORT.fullmatch(value) is None or not 1 <= int(value) <= 65535:
        raise UnexpectedConfig(f"not a port {value!r}")
    return int(value)


def _endpoint(value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise UnexpectedConfig(f"not host:port {value!r}")
    _host(host)
    _port(port)


def _key_value(line: str, key: str) -> str:
    prefix = f"{key} = "
    if not line.startswith(prefix):
        raise UnexpectedConfig(f"expected {key!r}, got {line!r}")
    return line[len(prefix) :]


def parse_wireguard(text: str) -> dict[str, str]:
    """The wg-quick file -> its values; raises UnexpectedConfig for anything else."""
    lines = _lines(text)
    shape = ["[Interface]", None, None, None, "", "[Peer]", None, None, None, None]
    if len(lines) != len(shape):
        raise UnexpectedConfig(f"expected {len(shape)} lines, got {len(lines)}")
    for line, fixed in zip(lines, shape, strict=True):
        if fixed is not None and line != fixed:
            raise UnexpectedConfig(f"expected {fixed!r}, got {line!r}")
    values = {
        "PrivateKey": _key_value(lines[1], "PrivateKey"),
        "Address": _key_value(lines[2], "Address"),
        "DNS": _key_value(lines[3], "DNS"),
        "PublicKey": _key_value(lines[6], "PublicKey"),
        "Endpoint": _key_value(lines[7], "Endpoint"),
        "AllowedIPs": _key_value(lines[8], "AllowedIPs"),
        "PersistentKeepalive": _key_value(lines[9], "PersistentKeepalive"),
    }
    if values["PrivateKey"] != "<insert your private key>":
        raise UnexpectedConfig("PrivateKey is not the placeholder")
    v4, v6 = values["Address"].split(", ")
    if str(ipaddress.IPv4Interface(v4)) != v4 or not v4.endswith("/32"):
        raise UnexpectedConfig(f"bad IPv4 address {v4!r}")
    if str(ipaddress.IPv6Interface(v6)) != v6 or not v6.endswith("/128"):
        raise UnexpectedConfig(f"bad IPv6 address {v6!r}")
    for server in values["DNS"].split(", "):
        if str(ipaddress.ip_address(server)) != server:
            raise UnexpectedConfig(f"bad DNS server {server!r}")
    if _WG_KEY.fullmatch(values["PublicKey"]) is None:
        raise UnexpectedConfig("PublicKey is not a base64 Curve25519 key")
    _endpoint(values["Endpoint"])
    if values["AllowedIPs"] != "0.0.0.0/0, ::/0" or values["PersistentKeepalive"] != "25":
        raise UnexpectedConfig("unexpected AllowedIPs or PersistentKeepalive")
    return values


_OPENVPN_DIRECTIVES = [
    "client",
    "dev tun",
    "proto udp",
    None,  # remote HOST PORT
    "resolv-retry infinite",
    "nobind",
    "persist-key",
    "persist-tun",
    "remote-cert-tls server",
    None,  # verify-x509-name CN name
    "auth-nocache",
    "verb 3",
]


def _block(lines: list[str], start: int, tag: str) -> tuple[list[str], int]:
    if lines[start] != f"<{tag}>":
        raise UnexpectedConfig(f"expected <{tag}>, got {lines[start]!r}")
    end = lines.index(f"</{tag}>", start)
    return lines[start + 1 : end], end + 1


def _pem_certificate(body: list[str]) -> None:
    if body[0] != "-----BEGIN CERTIFICATE-----" or body[-1] != "-----END CERTIFICATE-----":
        raise UnexpectedConfig("not a PEM certificate")
    if not all(_BASE64_LINE.fullmatch(line) for line in body[1:-1]):
        raise UnexpectedConfig("a PEM certificate line is not base64")
    x509.load_pem_x509_certificate(("\n".join(body) + "\n").encode())


def parse_openvpn(text: str) -> dict[str, str]:
    """The inline OpenVPN profile -> remote host and port; raises UnexpectedConfig for any
    directive, line or block it does not expect."""
    lines = _lines(text)
    for index, fixed in enumerate(_OPENVPN_DIRECTIVES):
        if fixed is not None and lines[index] != fixed:
            raise UnexpectedConfig(f"expected {fixed!r}, got {lines[index]!r}")
    remote = lines[3].split(" ")
    if len(remote) != 3 or remote[0] != "remote":
        raise UnexpectedConfig(f"bad remote line {lines[3]!r}")
    _host(f"[{remote[1]}]" if ":" in remote[1] else remote[1])
    _port(remote[2])
    verify = lines[9].split(" ")
    if len(verify) != 3 or verify[0] != "verify-x509-name" or verify[2] != "name":
        raise UnexpectedConfig(f"bad verify-x509-name line {lines[9]!r}")
    if _NODE_CN.fullmatch(verify[1]) is None:
        raise UnexpectedConfig("the pinned server name is not a node id")
    position = len(_OPENVPN_DIRECTIVES)
    ca, position = _block(lines, position, "ca")
    cert, position = _block(lines, position, "cert")
    key, position = _block(lines, position, "key")
    tls_crypt, position = _block(lines, position, "tls-crypt")
    if position != len(lines):
        raise UnexpectedConfig(f"unexpected lines after </tls-crypt>: {lines[position:]!r}")
    _pem_certificate(ca)
    _pem_certificate(cert)
    if key != ["<insert your private key>"]:
        raise UnexpectedConfig("the <key> block is not the placeholder")
    comments = [line for line in tls_crypt if line.startswith("#")]
    body = tls_crypt[len(comments) :]
    if not all(re.fullmatch(r"#[ -~]*", line) for line in comments):
        raise UnexpectedConfig("bad tls-crypt comment")
    if (
        len(body) != 18
        or body[0] != "-----BEGIN OpenVPN Static key V1-----"
        or body[-1] != "-----END OpenVPN Static key V1-----"
        or not all(_HEX_LINE.fullmatch(line) for line in body[1:-1])
    ):
        raise UnexpectedConfig("the <tls-crypt> block is not an OpenVPN static key")
    return {"host": remote[1], "port": remote[2]}


def parse_config(protocol: str, text: str) -> dict[str, str]:
    return parse_wireguard(text) if protocol == "wireguard" else parse_openvpn(text)
