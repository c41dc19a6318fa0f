"""Signalling a process and everything it started (a wrapper's child: anvil under node's shim,
PostgreSQL's backends), read from /proc."""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def process_tree(pid: int) -> list[int]:
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(_children(current))
    return tree


def signal_tree(pid: int, sig: signal.Signals) -> None:
    for member in process_tree(pid):
        with suppress(ProcessLookupError):
            os.kill(member, sig)
