"""OpenVPN up as a daemon the CLI manages by PID: the key and CSR made here (the key never
leaves this host), the profile with the key filled in, `openvpn --daemon` with its own log, and
the routes and DNS servers the node pushes (read back from that log)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nodus_cli.tunnel.system import TunnelError, run
from nodus_cli.tunnel.wgconf import PLACEHOLDER

CONNECTED: Final = "Initialization Sequence Completed"
_REMOTE = re.compile(r"^remote\s+(\S+)\s+(\d+)", re.MULTILINE)
_PUSHED_DNS = re.compile(r"dhcp-option DNS6? ([0-9A-Fa-f.:]+)")


def new_key_and_csr() -> tuple[str, str]:
    """(private key PEM, CSR PEM) for a P-256 key made here."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nodus-device")]))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def fill_private_key(profile: str, key_pem: str) -> str:
    if profile.count(PLACEHOLDER) != 1:
        raise TunnelError("the issued profile has no single private-key placeholder")
    return profile.replace(PLACEHOLDER, key_pem.strip())


def remote_of(profile: str) -> tuple[str, int]:
    match = _REMOTE.search(profile)
    if match is None:
        raise TunnelError("the issued profile names no remote")
    return match.group(1), int(match.group(2))


async def start(profile: Path, interface: str, pid_file: Path, log: Path, seconds: float) -> None:
    """Starts the daemon and waits for it to connect (the log says so) or fail. AUTH_FAILED
    right after the config was issued means the node's agent has not admitted the device yet
    (it does at its next poll): started again until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        outcome = await _attempt(profile, interface, pid_file, log, deadline)
        if outcome == "connected":
            return
        await stop(pid_file)
        text = _read(log)
        if outcome != "auth_failed" or time.monotonic() > deadline:
            reason = "did not connect in time" if outcome == "timeout" else "failed to connect"
            raise TunnelError(f"openvpn {reason}: {_tail(text)} (log: {log})")
        await asyncio.sleep(0.5)


async def _attempt(
    profile: Path, interface: str, pid_file: Path, log: Path, deadline: float
) -> str:
    _remove(log, pid_file)
    await run(
        # After the profile, so they win: no scripts whatever the profile says, our interface.
        "openvpn", "--config", str(profile), "--script-security", "1",
        "--dev", interface, "--dev-type", "tun",
        "--daemon", "nodus-openvpn", "--writepid", str(pid_file), "--log", str(log),
    )  # fmt: skip
    while time.monotonic() < deadline:
        text = _read(log)
        if CONNECTED in text:
            return "connected"
        if "AUTH_FAILED" in text:
            return "auth_failed"
        if "TLS Error" in text or not _alive(pid_file):
            return "failed"
        await asyncio.sleep(0.1)
    return "timeout"


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def pushed_dns(log: Path) -> list[str]:
    text = _read(log)
    return list(dict.fromkeys(_PUSHED_DNS.findall(text)))


def _pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid_file: Path) -> bool:
    pid = _pid(pid_file)
    if pid is None:
        return True  # not written yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def stop(pid_file: Path, seconds: float = 10) -> None:
    """SIGTERM (openvpn removes its routes and interface), SIGKILL after `seconds`."""
    pid = _pid(pid_file)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    _remove(pid_file)


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-400:]


def interface_bytes(interface: str) -> tuple[int, int]:
    """(received, sent) bytes of the tun interface; zeros when it is gone (the tunnel dropped)."""
    base = Path("/sys/class/net") / interface / "statistics"
    try:
        return int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text())
    except FileNotFoundError:
        return 0, 0
