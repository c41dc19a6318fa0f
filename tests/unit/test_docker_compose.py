"""docker-compose.yml cannot run here (no Docker engine); check what can be checked without one:
it parses, every long-running service reports health, and what it builds and runs exists."""

from __future__ import annotations

from typing import Any

import yaml

from control_plane.chain.contracts import REPO_ROOT


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return compose


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = load_compose()["services"]
    assert {"postgres", "chain", "deployer"} <= services.keys()
    for name, service in services.items():
        if service.get("restart") == "no":  # one-shot jobs exit; they need no health
            continue
        assert "healthcheck" in service, f"service {name} has no healthcheck"
        assert service["healthcheck"]["test"], f"service {name} has an empty healthcheck"


def test_built_image_and_commands_exist_in_the_repository() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        assert (REPO_ROOT / build["context"] / build["dockerfile"]).is_file(), name
        command = service.get("command", [])
        if command and command[0].startswith("scripts/"):
            assert (REPO_ROOT / command[0]).is_file(), f"{name} runs missing {command[0]}"


def test_deployer_waits_for_a_healthy_chain() -> None:
    deployer = load_compose()["services"]["deployer"]
    assert deployer["depends_on"]["chain"]["condition"] == "service_healthy"
