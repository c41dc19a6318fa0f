"""What the agent keeps on disk, in its state directory:

- `state.json`: the last desired set it applied, `{revision, peers, applied_at}`: on restart the
  agent applies it at once (fail-static), before it reaches the control plane;
- `status.json`: what `nodus-agent status` shows (sync times, fail-static, recent errors).

Both are replaced atomically (a temporary file in the same directory, fsync, rename, fsync of the
directory), so a crash leaves the old file or the new one, never half of one. Mode 0600."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node_agent.config import Pools
from node_agent.peers import Peer
from node_agent.validate import InvalidPayload, parse_peers, peer_to_json

log = logging.getLogger("nodus.agent.state")

STATE_FILE = "state.json"
STATUS_FILE = "status.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class AppliedState:
    revision: int
    peers: tuple[Peer, ...]
    applied_at: datetime


def atomic_write(path: Path, data: bytes) -> None:
    """Replaces `path` with `data`: readers and crashes see the old content or the new."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def status_path(self) -> Path:
        return self.directory / STATUS_FILE

    def ensure_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def save(self, state: AppliedState) -> None:
        document = {
            "format": FORMAT_VERSION,
            "revision": state.revision,
            "applied_at": state.applied_at.astimezone(UTC).isoformat(),
            "peers": [peer_to_json(peer) for peer in state.peers],
        }
        atomic_write(self.state_path, json.dumps(document, separators=(",", ":")).encode())

    def load(self, pools: Pools) -> AppliedState | None:
        """The persisted set; None if there is none. A file that does not parse or validate is
        moved aside (`state.json.bad`) and logged: the agent then waits for the control plane."""
        try:
            text = self.state_path.read_text()
        except FileNotFoundError:
            return None
        try:
            document = json.loads(text)
            if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
                raise InvalidPayload("unknown format")
            revision = document["revision"]
            if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
                raise InvalidPayload("bad revision")
            applied_at = datetime.fromisoformat(document["applied_at"])
            peers = parse_peers(document["peers"], pools)
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.state_path.with_name(STATE_FILE + ".bad")
            os.replace(self.state_path, aside)
            log.error("the state file is unusable (%s); moved it to %s", exc, aside)
            return None
        return AppliedState(revision, peers, applied_at)

    def save_status(self, status: dict[str, Any]) -> None:
        atomic_write(self.status_path, json.dumps(status, indent=2, default=str).encode())

    def load_status(self) -> dict[str, Any] | None:
        try:
            document = json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        return document if isinstance(document, dict) else None
