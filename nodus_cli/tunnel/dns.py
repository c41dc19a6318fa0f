"""DNS without resolvconf: /etc/resolv.conf is copied aside and rewritten in place (never
replaced by a rename: it may be a bind mount, as `ip netns exec` makes it), and `down` writes
the copy back."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Final

from nodus_cli.support.paths import write_private

RESOLV_CONF: Final = Path("/etc/resolv.conf")


def apply(servers: list[str], backup: Path, resolv_conf: Path = RESOLV_CONF) -> None:
    checked = [str(ipaddress.ip_address(server)) for server in servers]  # nothing else is written
    original = resolv_conf.read_text() if resolv_conf.exists() else ""
    write_private(backup, original)
    lines = ["# written by `nodus up`; `nodus down` restores the previous file"]
    lines += [f"nameserver {server}" for server in checked]
    with resolv_conf.open("w") as out:
        out.write("\n".join(lines) + "\n")


def restore(backup: Path, resolv_conf: Path = RESOLV_CONF) -> bool:
    """Writes the saved file back; False when there was none."""
    if not backup.exists():
        return False
    with resolv_conf.open("w") as out:
        out.write(backup.read_text())
    backup.unlink()
    return True
