"""docker-compose.yml cannot run here (no Docker engine); check what can be checked without one:
it parses, every long-running service reports health, and what it builds and runs exists."""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from control_plane.paths import REPO_ROOT


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return compose


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = load_compose()["services"]
    assert {"postgres", "chain", "deployer", "migrate", "control-plane", "nginx"} <= services.keys()
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
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./docker/"):
                assert (REPO_ROOT / source).is_file(), f"{name} mounts missing {source}"


def test_deployer_waits_for_a_healthy_chain() -> None:
    deployer = load_compose()["services"]["deployer"]
    assert deployer["depends_on"]["chain"]["condition"] == "service_healthy"


def test_control_plane_commands_are_console_scripts_of_the_package() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    services = load_compose()["services"]
    for name in ("migrate", "control-plane"):
        assert services[name]["command"][0] == "nodus-control-plane"
    assert 'nodus-control-plane = "control_plane.server:app"' in pyproject


def test_replicas_are_migrated_and_deployed_before_they_start() -> None:
    control_plane = load_compose()["services"]["control-plane"]
    assert control_plane["deploy"]["replicas"] >= 2
    conditions = {k: v["condition"] for k, v in control_plane["depends_on"].items()}
    assert conditions == {
        "migrate": "service_completed_successfully",
        "deployer": "service_completed_successfully",
    }


def test_the_control_plane_trusts_exactly_nginx_for_x_forwarded_for() -> None:
    compose = load_compose()
    services = compose["services"]
    nginx_address = services["nginx"]["networks"]["default"]["ipv4_address"]
    trusted = services["control-plane"]["environment"]["NODUS_TRUSTED_PROXIES"]
    assert trusted == nginx_address
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)


def test_the_image_is_told_where_its_contract_files_are() -> None:
    """The image runs `pip install .`: the package is in site-packages, not beside the files, so
    the compose file names both directories, where the Dockerfile builds and mounts them."""
    services = load_compose()["services"]
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text().splitlines()
    workdir = next(line.split()[1] for line in dockerfile if line.startswith("WORKDIR "))
    assert "RUN pip install --no-cache-dir ." in dockerfile
    assert "COPY contracts ./contracts" in dockerfile
    assert any("forge build" in line for line in dockerfile)  # writes contracts/out in WORKDIR
    for name in ("migrate", "control-plane"):
        environment = services[name]["environment"]
        assert environment["NODUS_DEPLOYMENTS_DIR"] == f"{workdir}/deployments"
        assert environment["NODUS_ARTIFACTS_DIR"] == f"{workdir}/contracts/out"
    mounts = {v.split(":")[1] for v in services["control-plane"]["volumes"]}
    assert f"{workdir}/deployments" in mounts
    deployer_mounts = {v.split(":")[1] for v in services["deployer"]["volumes"]}
    assert f"{workdir}/deployments" in deployer_mounts
