"""Hostile operator values: each must be refused where it enters (422) and never reach a
client's config. Line breaks of every kind (LF, CR, U+2028, U+0085), NUL, zone ids, quotes,
comment and statement characters, look-alike Unicode, over-long names."""

from __future__ import annotations

# The reported exploits first: a wg-quick `PreUp` hook through an IPv6 zone id, and names
# accepted because `$` matches before a trailing newline.
HOSTILE_ENDPOINTS = [
    "[fe80::1%x\n[Interface]\nPreUp = touch pwned; false\n#]:51820",
    "[fe80::1%x\nscript-security 2\nup /bin/sh\nmanagement 0.0.0.0 7505\n#]:1194",
    "vpn\n.example.net:51820",
    "198.18.7.1\n:51820",
    "vpn.example.net:51820\n",
    "vpn.example.net\n:51820",
    "vpn.example.net:51820\n[Interface]",
    "vpn.example.net\r:51820",
    "vpn\r\n.example.net:51820",
    "vpn\u2028.example.net:51820",
    "vpn\u0085.example.net:51820",
    "vpn\x00.example.net:51820",
    "[fe80::1%eth0]:51820",
    "[fe80::1%25eth0]:51820",
    "[::ffff:198.18.0.1%0]:51820",
    "vpn%0a.example.net:51820",
    '"vpn.example.net":51820',
    "vpn'.example.net:51820",
    "vpn\\.example.net:51820",
    "vpn#.example.net:51820",
    "vpn;.example.net:51820",
    "vpn.example.net:51820 #",
    "vpn.example.net:51820;",
    " vpn.example.net:51820",
    "vpn.example.net:51820\t",
    "vpn example.net:51820",
    "vpn.ex\u0430mple.net:51820",  # Cyrillic a
    "vpn.example.net:5182\uff10",  # full-width zero
    "\uff1198.18.7.1:51820",  # full-width one
    "vpn.example.net:+51820",
    "vpn.example.net:5_1820",
    "vpn.example.net:051820",
    "vpn.example.net.:51820",
    "-vpn.example.net:51820",
    "vpn-.example.net:51820",
    "a" * 64 + ".example.net:51820",
    ".".join(["a" * 63] * 4) + ".net:51820",
    "x" * 300 + ":51820",
    "198.18.007.1:51820",
    "198.18.7:51820",
    "2001:db8::1:51820",
    "[2001:db8::1]:0",
    "[2001:db8::1]:65536",
    "[[2001:db8::1]]:51820",
    "vpn.example.net",
    ":51820",
    "",
]

HOSTILE_COUNTRIES = [
    "DE\n",
    "D\n",
    "\nD",
    "D\r",
    "D\u2028",
    "D\u0085",
    "D\x00",
    "D#",
    "D;",
    'D"',
    "D'",
    "D\\",
    "D%",
    "\uff24\uff25",  # full-width
    "DEU",
    "XX",
    "ZZ",
    "",
    "D",
    "DE" * 100,
]

HOSTILE_KEYS = [
    "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n",
    "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg\n",
    "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZ\n[Peer]",
    "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh=",  # not canonical base64
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  # all zero
]

HOSTILE_POOLS = {
    "ipv4_pool": ["10.8.0.0/16\n", "10.8.0.0/16%", "10.8.0.0/16 #", "10.8.0.0\n/16"],
    "ipv6_pool": ["fd12:3456:789a::/112\n", "fd12:3456:789a::%x/112", "fd12::/112;"],
}
