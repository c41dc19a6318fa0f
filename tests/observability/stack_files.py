"""The observability stack's files in the repository (deploy/observability/) and the queries
in them: every dashboard panel's target and every alert rule's expression."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from control_plane.paths import REPO_ROOT

OBSERVABILITY = REPO_ROOT / "deploy" / "observability"
DASHBOARDS = sorted((OBSERVABILITY / "dashboards").glob("*.json"))
ALERT_FILES = sorted((OBSERVABILITY / "alerts").glob("*.yml"))
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel}"


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    annotations: dict[str, str]


def load_dashboard(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but the rows that group them."""
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def panel_queries() -> list[PanelQuery]:
    return [
        PanelQuery(dashboard["title"], panel["title"], target["expr"])
        for dashboard in map(load_dashboard, DASHBOARDS)
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def alert_rules() -> list[AlertRule]:
    return [
        AlertRule(rule["alert"], rule["expr"], rule.get("annotations", {}))
        for path in ALERT_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def datasource_uids() -> set[str]:
    return {
        source["uid"]
        for path in DATASOURCES.glob("*.yml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    }


def concrete(expr: str, variables: dict[str, str]) -> str:
    """What Grafana sends: its interval macros and the dashboard's template variables replaced
    (values fit a test scraping every second)."""
    for name, value in {
        "$__rate_interval": "30s",
        "$__interval": "5s",
        "$__range": "5m",
        **{f"${key}": value for key, value in variables.items()},
    }.items():
        expr = expr.replace(name, value)
    return expr
