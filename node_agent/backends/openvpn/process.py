"""The `openvpn` server process: spawned, adopted from an earlier run, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from node_agent.backends.openvpn.files import Paths, read_file

log = logging.getLogger("nodus.agent.openvpn")


class ServerProcess:
    """The running `openvpn`: a child of ours (a plain Popen, which, unlike an asyncio
    subprocess, is not killed when the agent goes away) or one adopted from an earlier run."""

    def __init__(self, pid: int, process: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self.process = process

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return pid_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if await self._wait(grace):
            return
        log.warning("openvpn (pid %d) ignored SIGTERM for %.0fs: killing it", self.pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        await self._wait(grace)

    async def _wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.alive():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = read_file(Path(f"/proc/{pid}/stat"))
    return stat is None or ") Z " not in stat  # a zombie is gone


def running_server(paths: Paths, config: str) -> int | None:
    """The PID of an `openvpn` started by an earlier run of the agent (its pid file) that
    still serves exactly `config`; an older one is stopped. None if there is none to adopt."""
    text = read_file(paths.pid)
    if text is None or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if str(paths.config).encode() not in cmdline or not pid_alive(pid):
        return None
    if read_file(paths.config_digest) == digest(config):
        return pid
    log.warning("an OpenVPN server (pid %d) runs an older configuration: replacing it", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    return None


def spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Starts the server in its own session with output appended to `log_path`. A plain Popen
    (fork and exec: quick), so it outlives the agent: clients stay connected."""
    with log_path.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 (the operator's binary and prefix, our config)
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def is_our_server(pid: int, paths: Paths) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(paths.config).encode() in cmdline


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
