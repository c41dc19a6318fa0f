"""Where the server's CPU goes during a benchmark: py-spy samples the uvicorn process (collapsed
stacks), and each sample is charged to the innermost frame that belongs to a known layer
(the database driver, SQLAlchemy, FastAPI, pydantic, ...). Idle samples (the event loop
waiting in select/epoll) are left out, so the shares are of busy CPU."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PY_SPY = str(Path(sys.executable).parent / "py-spy")

# Innermost match wins; order only breaks ties inside one frame's text.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("asyncpg (driver, protocol)", ("asyncpg/",)),
    ("SQLAlchemy (ORM, Core, compile, result rows)", ("sqlalchemy/",)),
    ("pydantic (validation, serialization)", ("pydantic/", "pydantic_core/")),
    ("FastAPI / Starlette (routing, dependencies)", ("fastapi/", "starlette/")),
    ("uvicorn / HTTP parsing", ("uvicorn/", "h11/", "httptools/")),
    ("JWT (pyjwt)", ("jwt/",)),
    ("json", ("json/",)),
    ("Nodus code (control_plane)", ("control_plane/",)),
    ("asyncio event loop", ("asyncio/", "uvloop/")),
)
IDLE = ("select (selectors.py", "poll (selectors.py", "_run_once", "run_forever")


@dataclass
class Profile:
    samples: int = 0
    by_layer: Counter[str] = field(default_factory=Counter)

    def shares(self) -> list[tuple[str, float]]:
        total = max(1, sum(self.by_layer.values()))
        return [(name, count / total) for name, count in self.by_layer.most_common()]


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):  # innermost first
        for name, markers in LAYERS:
            if any(marker in frame for marker in markers):
                return name
    return "other (stdlib, libraries)"


def summarize(raw: Path) -> Profile:
    """Reads py-spy's `--format raw` output: `frame;frame;... count` per line."""
    profile = Profile()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        count = int(count_text)
        innermost = frames[-1]
        if any(marker in innermost for marker in IDLE) or "select" in innermost.split(" ")[0]:
            continue
        profile.samples += count
        profile.by_layer[_layer(frames)] += count
    return profile


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system), with its live descendants' (uvicorn's
    workers when it runs several), from /proc."""
    total = 0.0
    for process in [pid, *_descendants(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


@contextlib.contextmanager
def sampled(pid: int, out: Path) -> Iterator[None]:
    """py-spy records `pid` while the block runs (nothing if py-spy is not installed)."""
    if not Path(PY_SPY).exists() and shutil.which("py-spy") is None:
        yield
        return
    spy = subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
         "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
