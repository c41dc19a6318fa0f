"""Where the backend keeps its files, the server configuration it renders, and atomic writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from node_agent.backends.openvpn.material import OpenVpnMaterial
from node_agent.backends.openvpn.templates import SERVER_CONFIG
from node_agent.config import OpenVpnOptions, safe_path


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> Paths:
        return cls(safe_path(state_dir, "state_dir"))

    @property
    def config(self) -> Path:
        return self.root / "server.conf"

    @property
    def material(self) -> Path:
        return self.root / "material.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.pki / "server.crt"

    @property
    def key(self) -> Path:
        return self.pki / "server.key"

    @property
    def tls_crypt(self) -> Path:
        return self.pki / "tls-crypt.key"

    @property
    def crl(self) -> Path:
        return self.pki / "crl.pem"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    @property
    def client_connect(self) -> Path:
        return self.root / "client-connect.sh"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def management(self) -> Path:
        return self.run / "management.sock"

    @property
    def status(self) -> Path:
        return self.run / "status.log"

    @property
    def pid(self) -> Path:
        return self.run / "openvpn.pid"

    @property
    def config_digest(self) -> Path:
        """sha256 of the configuration the running server was started with."""
        return self.run / "server.conf.sha256"

    @property
    def log(self) -> Path:
        return self.root / "openvpn.log"


def render_server_config(settings: OpenVpnOptions, material: OpenVpnMaterial, paths: Paths) -> str:
    """The server configuration for `material` (see templates.SERVER_CONFIG)."""
    udp = settings.proto.startswith("udp")
    return SERVER_CONFIG.substitute(
        port=material.port,
        proto=settings.proto,
        local_line=f"local {settings.listen}" if settings.listen else "",
        device=settings.device,
        ipv4_network=material.ipv4_pool.network_address,
        ipv4_netmask=material.ipv4_pool.netmask,
        ipv6_pool=material.ipv6_pool,
        ca=paths.ca,
        cert=paths.cert,
        key=paths.key,
        tls_crypt=paths.tls_crypt,
        crl=paths.crl,
        client_connect=paths.client_connect,
        clients_dir=paths.clients,
        keepalive_interval=settings.keepalive[0],
        keepalive_timeout=settings.keepalive[1],
        exit_notify_line="explicit-exit-notify 1" if udp else "",
        management=paths.management,
        status=paths.status,
        status_interval=settings.status_interval_seconds,
        pid_file=paths.pid,
        verb=settings.verb,
        push_lines="\n".join(f'push "{option}"' for option in settings.push),
        extra_lines="\n".join(settings.extra_directives),
    )


def write_atomic(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    """Replaces `path` with `content` in one rename (a reader never sees half a file)."""
    data = content.encode() if isinstance(content, str) else content
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(partial, mode)
    partial.replace(path)


def read_file(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
