"""The observability services of docker-compose.yml and their files, checked without Docker:
health, mounts, Grafana's provisioning, the dashboards' data sources and descriptions, and the
alert rules (names from the metrics contract, annotations, `promtool check rules`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from control_plane.paths import REPO_ROOT
from tests.observability.stack_files import (
    ALERT_FILES,
    DASHBOARDS,
    OBSERVABILITY,
    alert_rules,
    datasource_uids,
    load_dashboard,
    panel_queries,
    panels,
)
from tests.test_docker_compose import load_compose

OBSERVABILITY_SERVICES = {
    "otel-collector",
    "victoriametrics",
    "vmalert",
    "loki",
    "tempo",
    "grafana",
}
ALERT_NAMES = {
    "NodusIndexerLagging",
    "NodusRpcBreakerOpen",
    "NodusOracleOutboxStuck",
    "NodusEpochNotPosted",
    "NodusRootPendingUnverified",
    "NodusAgentApplyFailing",
    "NodusLongPollSaturation",
}


def services() -> dict[str, Any]:
    found: dict[str, Any] = load_compose()["services"]
    return found


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of each ./ bind mount."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def test_every_observability_service_is_pinned_and_has_a_healthcheck() -> None:
    found = services()
    assert found.keys() >= OBSERVABILITY_SERVICES
    for name in OBSERVABILITY_SERVICES:
        service = found[name]
        image = service["image"]
        assert ":" in image, f"{name} image has no tag"
        assert not image.endswith(":latest"), f"{name} image is not pinned"
        assert service["healthcheck"]["test"], f"{name} has no healthcheck"


def test_every_mount_points_at_a_file_or_folder_in_the_repository() -> None:
    for name in OBSERVABILITY_SERVICES:
        for target, source in bind_mounts(services()[name]).items():
            assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source} at {target}"


def test_configs_name_the_files_their_service_mounts() -> None:
    found = services()
    victoria = found["victoriametrics"]
    scrape_flag = next(f for f in victoria["command"] if f.startswith("-promscrape.config="))
    scrape_path = scrape_flag.split("=", 1)[1]
    assert scrape_path in bind_mounts(victoria)
    scrape = yaml.safe_load((REPO_ROOT / bind_mounts(victoria)[scrape_path]).read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["control-plane"]["dns_sd_configs"][0]["names"] == ["control-plane"]
    for sd in jobs["agent"]["file_sd_configs"]:
        assert all(path in bind_mounts(victoria) for path in sd["files"])
    collector = found["otel-collector"]
    config_flag = next(f for f in collector["command"] if f.startswith("--config="))
    assert config_flag.split("=", 1)[1] in bind_mounts(collector)
    rule_flag = next(f for f in found["vmalert"]["command"] if f.startswith("-rule="))
    rule_folder = rule_flag.split("=", 1)[1].rsplit("/", 1)[0]
    assert bind_mounts(found["vmalert"])[rule_folder] == "./deploy/observability/alerts"


def test_grafana_provisions_the_mounted_dashboards_and_data_sources() -> None:
    mounts = bind_mounts(services()["grafana"])
    provisioning = REPO_ROOT / mounts["/etc/grafana/provisioning"]
    assert (provisioning / "datasources").is_dir()
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    for provider in providers["providers"]:
        folder = mounts[provider["options"]["path"]]
        assert {p.name for p in (REPO_ROOT / folder).glob("*.json")} == {p.name for p in DASHBOARDS}
    assert {p.stem for p in DASHBOARDS} == {"control-plane", "node-operator", "economy"}


def test_dashboards_use_provisioned_data_sources_and_describe_every_panel() -> None:
    uids = datasource_uids()
    titles = [load_dashboard(path)["title"] for path in DASHBOARDS]
    assert len(set(titles)) == len(titles), titles
    assert {"victoriametrics", "loki", "tempo"} <= uids
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        panel_titles = [panel["title"] for panel in panels(dashboard)]
        assert len(set(panel_titles)) == len(panel_titles), path.name
        for panel in panels(dashboard):
            assert panel["datasource"]["uid"] in uids, (path.name, panel["title"])
            assert all(t["datasource"]["uid"] in uids for t in panel["targets"])
            assert panel.get("description", "").endswith("?"), (path.name, panel["title"])
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] in uids
    node = load_dashboard(OBSERVABILITY / "dashboards" / "node-operator.json")
    assert [v["name"] for v in node["templating"]["list"]] == ["node"]


def test_alert_rules_are_the_contracts_and_say_what_to_do() -> None:
    rules = alert_rules()
    assert {rule.name for rule in rules} == ALERT_NAMES
    for rule in rules:
        assert rule.annotations.get("summary"), rule.name
        assert len(rule.annotations.get("description", "")) > 80, rule.name


def test_alert_rules_pass_promtool() -> None:
    """promtool comes from Debian's prometheus package (scripts/lib.sh DEBIAN_PACKAGES)."""
    result = subprocess.run(
        ["promtool", "check", "rules", *map(str, ALERT_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in result.stdout


def test_every_metric_the_dashboards_and_alerts_read_is_documented_in_the_readme() -> None:
    """The README lists the metric names (the contract with /metrics); a renamed metric breaks
    here before it blanks a panel."""
    readme = (REPO_ROOT / "README.md").read_text()
    expressions = [query.expr for query in panel_queries()] + [r.expr for r in alert_rules()]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expr in expressions
        for name in re.findall(r"\bnodus_[a-z_]+", expr)
    }
    assert used, "no nodus_ metric read at all"
    assert sorted(name for name in used if not re.search(rf"\b{name}\b", readme)) == []


def test_each_alert_fires_on_its_condition_and_only_then() -> None:
    """`promtool test rules` on tests/observability/alert_cases.yml: every alert, firing after its
    `for` with its annotations, and quiet just short of its threshold or once it recovers."""
    cases = Path(__file__).with_name("alert_cases.yml")
    tested = set(re.findall(r"alertname: (\w+)", cases.read_text()))
    assert tested == ALERT_NAMES
    result = subprocess.run(
        ["promtool", "test", "rules", cases.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=cases.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
