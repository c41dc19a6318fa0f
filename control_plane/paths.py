"""Default locations of the contracts' build artifacts and deployment records: a base module
(no imports) so that settings, the chain adapter and the CLI share one definition."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_ARTIFACTS_DIR: Final = REPO_ROOT / "contracts" / "out"
DEFAULT_DEPLOYMENTS_DIR: Final = REPO_ROOT / "deployments"
