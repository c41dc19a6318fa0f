"""The deployments and artifacts directories are found in a checkout and in an installed
package (the Docker image's `pip install .`), and an explicit variable wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.paths import ARTIFACTS, DEPLOYMENTS, REPO_ROOT, locate
from control_plane.settings import Settings

SECRETS = {"jwt_secret": "j" * 32, "api_key_secret": "a" * 32, "data_key": "d" * 32}


def installed_layout(root: Path) -> tuple[Path, Path]:
    """/app as the image has it, and a site-packages that holds the package and nothing else."""
    app = root / "app"
    (app / "deployments").mkdir(parents=True)
    (app / "contracts" / "out").mkdir(parents=True)
    site_packages = root / "usr" / "lib" / "python3.11" / "site-packages"
    (site_packages / "control_plane").mkdir(parents=True)
    return app, site_packages


def test_an_installed_package_finds_the_files_from_its_working_directory(tmp_path: Path) -> None:
    app, site_packages = installed_layout(tmp_path)
    for cwd in (app, app / "contracts"):  # the WORKDIR, or below it
        assert locate(DEPLOYMENTS, environ={}, cwd=cwd, source_root=site_packages) == (
            app / "deployments"
        )
        assert locate(ARTIFACTS, environ={}, cwd=cwd, source_root=site_packages) == (
            app / "contracts" / "out"
        )


def test_the_variables_win_over_what_is_found(tmp_path: Path) -> None:
    app, site_packages = installed_layout(tmp_path)
    environ = {"NODUS_DEPLOYMENTS_DIR": "/srv/d", "NODUS_ARTIFACTS_DIR": "/srv/a"}
    assert locate(DEPLOYMENTS, environ=environ, cwd=app, source_root=site_packages) == Path(
        "/srv/d"
    )
    assert locate(ARTIFACTS, environ=environ, cwd=app, source_root=site_packages) == Path("/srv/a")


def test_nothing_found_names_the_working_directory(tmp_path: Path) -> None:
    _, site_packages = installed_layout(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = locate(DEPLOYMENTS, environ={}, cwd=elsewhere, source_root=site_packages)
    assert found == elsewhere.resolve() / "deployments"


def test_a_checkout_finds_its_own_files_from_anywhere_inside_it() -> None:
    for cwd in (REPO_ROOT, REPO_ROOT / "tests" / "unit"):
        assert locate(DEPLOYMENTS, environ={}, cwd=cwd) == REPO_ROOT / "deployments"
        assert locate(ARTIFACTS, environ={}, cwd=cwd) == REPO_ROOT / "contracts" / "out"


def test_an_editable_install_finds_its_checkout_from_outside_it(tmp_path: Path) -> None:
    assert locate(DEPLOYMENTS, environ={}, cwd=tmp_path) == REPO_ROOT / "deployments"


def test_the_settings_take_the_same_directories(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app, _ = installed_layout(tmp_path)
    monkeypatch.chdir(app)
    for name in ("NODUS_DEPLOYMENTS_DIR", "NODUS_ARTIFACTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(**SECRETS)  # type: ignore[arg-type]
    assert settings.deployments_dir == app.resolve() / "deployments"
    assert settings.artifacts_dir == app.resolve() / "contracts" / "out"
    monkeypatch.setenv("NODUS_DEPLOYMENTS_DIR", "/srv/deployments")
    assert Settings(**SECRETS).deployments_dir == Path("/srv/deployments")  # type: ignore[arg-type]
