"""`scripts/dev_node.py check`, which `scripts/dev` asks before it starts its demo node: without
root it names the reason (scripts/dev prints it and starts no node); as root with the tools it
agrees. The node itself: tests/e2e/test_dev_demo_node.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from control_plane.paths import REPO_ROOT

CHECK = [sys.executable, str(REPO_ROOT / "scripts" / "dev_node.py"), "check"]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop it"
)
def test_without_root_it_says_why_and_refuses() -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CHECK]
    done = subprocess.run(as_nobody, capture_output=True, text=True, check=False)

    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "not running as root (network namespaces and WireGuard need it)"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("wireguard-go") is None or shutil.which("wg") is None,
    reason="needs root, wg and wireguard-go",
)
def test_as_root_with_wireguard_go_it_agrees() -> None:
    done = subprocess.run(CHECK, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stdout
    assert done.stdout == ""
