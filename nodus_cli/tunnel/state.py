"""The active tunnel, kept in the XDG state directory ($XDG_STATE_HOME/nodus/tunnel.json,
mode 0600) so `nodus down` and `nodus status` find what `nodus up` made: each step that changed
the host is recorded as the command that undoes it, in the order to run them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodus_cli.support.paths import write_private


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nodus"


@dataclass
class TunnelState:
    """What `nodus up` set up. `undo` holds argv lists, run last-first by `down`."""

    node_id: str
    protocol: str
    interface: str
    endpoint: str
    config_path: str
    config_id: str
    addresses: list[str]
    expires_at: str | None
    started_at: float
    undo: list[list[str]] = field(default_factory=list)
    resolv_backup: str | None = None
    pid_file: str | None = None
    kill_switch: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> TunnelState:
        return cls(**body)


class StateStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()

    @property
    def path(self) -> Path:
        return self.directory / "tunnel.json"

    def load(self) -> TunnelState | None:
        try:
            return TunnelState.from_json(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None

    def save(self, state: TunnelState) -> None:
        write_private(self.path, json.dumps(state.to_json(), indent=2))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# The kill switch lets nothing but the tunnel out, the CLI's own API and RPC calls included: when
# the node stops carrying this device (a lapsed subscription), they fail until `nodus down`.
KILL_SWITCH_NEXT_STEP = (
    "the kill switch of `nodus up --kill-switch` lets nothing but the tunnel out: if the tunnel "
    "stopped (a lapsed subscription), run `sudo nodus down`, then `nodus renew` and `nodus up`"
)


def kill_switch_is_on(store: StateStore | None = None) -> bool:
    """Whether a tunnel `nodus up` made is up with its kill switch (an unreadable state file
    counts as no)."""
    try:
        state = (store or StateStore()).load()
    except (OSError, ValueError, TypeError):
        return False
    return state is not None and state.kill_switch
