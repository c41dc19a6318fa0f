"""Each test's kind, as a marker, so a lane can pick by cost (`scripts/test --fast`):

- `faults`: starts its own PostgreSQL cluster or anvil and breaks it (tests/faults);
- `e2e`: real tunnels in network namespaces or a whole stack in processes (tests/e2e*);
- `chain`: sends transactions to anvil (uses the `w3` fixture or a dev-chain helper directly);
- `api`: the application on the real PostgreSQL (and a read-only anvil deployment);
- `unit`: none of the above (pure code, fakes at process seams).

A test gets exactly one kind, the most expensive that applies."""

from __future__ import annotations

from pathlib import Path

import pytest

KINDS = {
    "unit": "pure code: no database, no chain, no processes",
    "api": "the application on the real PostgreSQL (and a read-only anvil deployment)",
    "chain": "sends transactions to the real contracts on anvil",
    "e2e": "real tunnels in network namespaces, or the whole stack in processes",
    "faults": "stops, freezes or signals real components it started itself (tests/faults)",
}
_E2E_DIRS = ("e2e", "e2e_rewards")
_E2E_FIXTURES = frozenset({"lab"})  # network namespaces, outside tests/e2e* too
_CHAIN_FIXTURES = frozenset({"w3", "anvil", "deployment", "deployments_dir"})
_API_FIXTURES = frozenset({"client", "app", "settings", "database_url", "clean_database"})


def kind_of(item: pytest.Item, tests_root: Path) -> str:
    parts = Path(str(item.path)).relative_to(tests_root).parts
    if parts and parts[0] in _E2E_DIRS:
        return "e2e"
    if parts and parts[0] == "faults":
        return "faults"
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & _E2E_FIXTURES:
        return "e2e"
    if "w3" in fixtures:
        return "chain"
    if fixtures & (_API_FIXTURES | _CHAIN_FIXTURES):
        return "api"
    return "unit"


def register(config: pytest.Config) -> None:
    for name, meaning in KINDS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def mark(items: list[pytest.Item], tests_root: Path) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, kind_of(item, tests_root)))
