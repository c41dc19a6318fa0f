"""The agent's deployment files: the systemd unit is hardened as documented and passes
`systemd-analyze verify` (systemd from Debian; every key it does not know is a failure here,
not a warning), and the Containerfile copies only what exists and runs `nodus-agent run`. No
container engine runs on the test machines, so the image itself is not built here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[2] / "node_agent" / "deploy"
REPO = Path(__file__).parents[2]
UNIT = DEPLOY / "nodus-agent.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    """`Key=value` lines of the [Service] section (repeatable keys keep every value)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_is_confined_to_the_network_capabilities() -> None:
    service = unit_settings(UNIT.read_text())

    bounding = set(service["CapabilityBoundingSet"][0].split())
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW"} <= bounding
    assert bounding <= {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert set(service["AmbientCapabilities"][0].split()) == bounding
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["ReadWritePaths"] == ["/var/lib/nodus-agent"]  # the default state_dir
    assert service["StateDirectory"] == ["nodus-agent"]
    assert service["ProtectKernelTunables"] == ["no"]  # the agent turns forwarding on
    assert service["DeviceAllow"] == ["/dev/net/tun rw"]  # wireguard-go and OpenVPN
    assert service["KillMode"] == ["mixed"]  # SIGTERM to the agent: it tears down
    assert re.fullmatch(r"/\S+/nodus-agent run", service["ExecStart"][0])


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="apt-get install systemd")
def test_systemd_analyze_verifies_the_unit_without_a_warning(tmp_path: Path) -> None:
    agent = Path(sys.executable).with_name("nodus-agent")
    assert agent.exists(), "pip install -e . puts nodus-agent next to python"
    installed = tmp_path / "nodus-agent.service"
    installed.write_text(
        UNIT.read_text().replace("ExecStart=/usr/local/bin/nodus-agent", f"ExecStart={agent}")
    )

    result = subprocess.run(
        ["systemd-analyze", "verify", str(installed)], capture_output=True, text=True, check=False
    )

    said = [line for line in (result.stdout + result.stderr).splitlines() if installed.name in line]
    assert result.returncode == 0, result.stderr
    assert said == []  # "Unknown key", "ignoring" and the like are failures here

    broken = tmp_path / "broken.service"
    broken.write_text(installed.read_text().replace("ProtectSystem=", "ProtectSystm="))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, check=False
    )
    assert "Unknown key 'ProtectSystm'" in result.stderr  # the check above can fail


def test_the_containerfile_copies_what_exists_and_runs_the_agent() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.MULTILINE)
    sources = [source for line in copies for source in line.split()]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source  # the build context is the repository root
    for package in ("wireguard-tools", "wireguard-go", "openvpn", "nftables", "iproute2"):
        assert package in text
    assert 'ENTRYPOINT ["nodus-agent"]' in text
    assert 'CMD ["run"]' in text
    assert 'VOLUME ["/var/lib/nodus-agent"]' in text
