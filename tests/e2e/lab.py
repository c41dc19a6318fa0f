"""Network namespaces, veth pairs and wireguard-go interfaces for tests with real tunnels.

Every name carries a per-run tag (wireguard-go's control socket lives in /var/run/wireguard,
shared by all namespaces, so interface names must be unique machine-wide). Everything made is
recorded and removed by `close()`, by PID and by name, whatever happened in between."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("ip", "wg", "wg-quick", "wireguard-go", "ping")
SKIP_REASON = "requires root and /dev/net/tun"


def can_tunnel() -> bool:
    return (
        os.geteuid() == 0
        and Path("/dev/net/tun").exists()
        and all(shutil.which(tool) for tool in TOOLS)
    )


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def sh(
    *args: str,
    check: bool = True,
    seconds: float = 30,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Runs a command without blocking the event loop (the agent may share it)."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(seconds):
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    result = Result(process.returncode or 0, out.decode(), err.decode())
    if check and not result.ok:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


async def stop_process(process: asyncio.subprocess.Process, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; waits for it either way."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        async with asyncio.timeout(grace):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@dataclass
class Lab:
    directory: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    _count: int = 0

    def name(self, role: str) -> str:
        """A machine-wide unique name of at most 15 characters (an interface name's limit)."""
        self._count += 1
        name = f"nd{self.tag}{role}{self._count}"
        assert len(name) <= 15, name
        return name

    async def namespace(self, role: str) -> str:
        name = f"nodus-{self.tag}-{role}"
        await sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        await sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    async def veth(self, ns_a: str, address_a: str, ns_b: str, address_b: str) -> None:
        """A veth pair between two namespaces, each end with an address (CIDR) and up."""
        a, b = self.name("a"), self.name("b")
        await sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", b, "netns", ns_b)
        for ns, end, address in ((ns_a, a, address_a), (ns_b, b, address_b)):
            await sh("ip", "-n", ns, "addr", "add", address, "dev", end)
            await sh("ip", "-n", ns, "link", "set", end, "up")

    async def wireguard_go(self, namespace: str, role: str) -> str:
        """Starts wireguard-go for a new interface inside `namespace` (its own session, in the
        foreground, so it is stopped by PID); returns the interface name once it exists."""
        interface = self.name(role)
        log = (self.directory / f"wireguard-go-{interface}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", namespace, "wireguard-go", "-f", interface,
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.processes.append(process)
        self.interfaces.append(interface)
        for _ in range(100):
            if (await sh("ip", "-n", namespace, "link", "show", interface, check=False)).ok:
                return interface
            if process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"wireguard-go {interface} did not start (see {log.name})")

    async def close(self) -> None:
        for process in reversed(self.processes):
            await stop_process(process, grace=5)
        for namespace in reversed(self.namespaces):
            await sh("ip", "netns", "del", namespace, check=False)
        for interface in self.interfaces:  # wireguard-go removes it, unless it was killed
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/var/run/wireguard/{interface}.sock")


async def ping(namespace: str, address: str, count: int = 1, wait: float = 1) -> bool:
    result = await sh(
        "ip", "netns", "exec", namespace, "ping", "-n", "-q", "-c", str(count),
        "-W", str(wait), address, check=False, seconds=count * wait + 5,
    )  # fmt: skip
    return result.ok


async def wg_peers(namespace: str, interface: str) -> set[str]:
    shown = await sh("ip", "netns", "exec", namespace, "wg", "show", interface, "peers")
    return set(shown.stdout.split())
