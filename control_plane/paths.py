"""Where the contracts' deployment records and build artifacts are: one definition shared by
settings, the chain adapter and the CLI (a base module: no project imports).

`pip install .` (the Docker image) puts the package in site-packages, far from any checkout, so
the files are found from where the process runs, in this order:
1. `NODUS_DEPLOYMENTS_DIR` / `NODUS_ARTIFACTS_DIR`, when set (docker-compose.yml sets both);
2. the nearest `deployments/` / `contracts/out/` in the working directory or above it (a
   checkout and its subdirectories; `/app` in the image, its WORKDIR);
3. the source checkout of an editable install (`pip install -e .`), wherever the process runs;
4. otherwise `./deployments` / `./contracts/out`, which the "no deployments file ... run
   scripts/deploy" and "no artifact ... run forge build" errors then name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

SOURCE_ROOT: Final = Path(__file__).resolve().parents[1]
"""The directory above the package: the checkout for an editable install, site-packages for a
regular one."""

REPO_ROOT: Final = SOURCE_ROOT
"""The source checkout (tests and dev tools, which only run from one)."""

DEPLOYMENTS: Final = ("NODUS_DEPLOYMENTS_DIR", Path("deployments"))
ARTIFACTS: Final = ("NODUS_ARTIFACTS_DIR", Path("contracts") / "out")


def locate(
    what: tuple[str, Path],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    source_root: Path = SOURCE_ROOT,
) -> Path:
    """The directory `what` (an environment variable and a path relative to a project root),
    found in the order the module docstring gives."""
    variable, relative = what
    explicit = (os.environ if environ is None else environ).get(variable)
    if explicit:
        return Path(explicit).expanduser()
    start = (cwd or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / relative).is_dir():
            return directory / relative
    if (source_root / relative).is_dir():
        return source_root / relative
    return start / relative


def default_deployments_dir() -> Path:
    return locate(DEPLOYMENTS)


def default_artifacts_dir() -> Path:
    return locate(ARTIFACTS)


# Resolved once at import, for the defaults of functions and CLI options; the settings resolve
# their own when they are built (default_deployments_dir / default_artifacts_dir).
DEFAULT_DEPLOYMENTS_DIR: Final = default_deployments_dir()
DEFAULT_ARTIFACTS_DIR: Final = default_artifacts_dir()
