"""Wires an Agent from its configuration (keys, backends, client, state) and runs it until
SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from node_agent.agent import Agent
from node_agent.backends import VpnBackend
from node_agent.backends.commands import CommandRunner
from node_agent.backends.openvpn import ClientMaterialSource, OpenVpnBackend
from node_agent.backends.wireguard import WireGuardBackend
from node_agent.client import ControlPlaneClient
from node_agent.config import PASSPHRASE_ENV, AgentConfig
from node_agent.keys import load_agent_key
from node_agent.state import StateStore

log = logging.getLogger("nodus.agent")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def build_backends(config: AgentConfig, client: ControlPlaneClient) -> dict[str, VpnBackend]:
    """WireGuard when enabled; OpenVPN when its section is (`[openvpn]` in the file, or
    NODUS_AGENT_OPENVPN_ENABLED), fetching its material through `client`. Nothing is started
    here: a backend starts on its first `apply` (or `stats`)."""
    backends: dict[str, VpnBackend] = {}
    wg = config.wireguard
    if wg.enabled:
        backends["wireguard"] = WireGuardBackend(
            wg.interface,
            runner=CommandRunner(wg.command_prefix),
            wg=wg.wg_binary,
            private_key_file=wg.private_key_file if wg.configure_interface else None,
            listen_port=wg.listen_port if wg.configure_interface else None,
            max_peers_per_command=wg.max_peers_per_command,
        )
    if config.openvpn is not None:
        backends["openvpn"] = OpenVpnBackend(config.openvpn, ClientMaterialSource(client))
    return backends


async def run_agent(config: AgentConfig) -> None:
    account = load_agent_key(config.agent_key_file, os.environ.get(PASSPHRASE_ENV))
    if not config.wireguard.enabled and config.openvpn is None:
        raise SystemExit("no backend is enabled (wireguard.enabled = false and no [openvpn])")
    async with ControlPlaneClient(config.control_plane, config.node_id, account) as client:
        backends = build_backends(config, client)
        log.info(
            "nodus-agent for node %s (agent %s), control plane %s, backends: %s",
            config.node_id,
            account.address,
            config.control_plane.url,
            ", ".join(sorted(backends)),
        )
        agent = Agent(config, client, backends, StateStore(config.state_dir))
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await agent.run()
        except asyncio.CancelledError:
            log.info("stopping; the interface keeps its peers (fail-static)")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
