"""Wires an Agent from its configuration (keys, backends, client, state) and runs it until
SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from node_agent import __version__
from node_agent.agent import Agent
from node_agent.backends import VpnBackend
from node_agent.backends.commands import CommandRunner
from node_agent.backends.openvpn import ClientMaterialSource, OpenVpnBackend
from node_agent.backends.wireguard import WireGuardBackend
from node_agent.client import ControlPlaneClient
from node_agent.config import PASSPHRASE_ENV, AgentConfig
from node_agent.keys import load_agent_key
from node_agent.metrics import AgentMetrics
from node_agent.network import NodeNetwork
from node_agent.state import StateStore
from node_agent.tracing import build_tracer_provider, tracer_of

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

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
    # Off unless OTEL_* asks for traces; the client sends traceparent on each request.
    provider = build_tracer_provider(os.environ, config.node_id)
    tracer = tracer_of(provider)
    try:
        async with ControlPlaneClient(
            config.control_plane, config.node_id, account, tracer=tracer
        ) as client:
            await _serve(config, client, tracer)
    finally:
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)  # exports the spans still batched


async def _serve(config: AgentConfig, client: ControlPlaneClient, tracer: Tracer) -> None:
    """Builds the agent on `client` and runs it until SIGTERM/SIGINT, then stops it."""
    backends = build_backends(config, client)
    log.info(
        "nodus-agent for node %s (agent %s), control plane %s, backends: %s",
        config.node_id,
        client.account.address,
        config.control_plane.url,
        ", ".join(sorted(backends)),
    )
    network = NodeNetwork(config) if config.network.manage else None
    agent = Agent(
        config,
        client,
        backends,
        StateStore(config.state_dir),
        network=network,
        metrics=AgentMetrics(config.node_id, __version__),
        tracer=tracer,
    )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        if network is not None:
            await network.setup()  # before the first apply: the interface must exist
        if config.health_listen is None and config.endpoint is None:
            log.warning(
                "no health endpoint: the config has no `endpoint` (the node's public "
                "host:port), so the prober finds nothing and the node loses its uptime score"
            )
        await agent.run()
    except asyncio.CancelledError:
        log.info("stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await _stop(config, backends, network)


async def _stop(
    config: AgentConfig, backends: dict[str, VpnBackend], network: NodeNetwork | None
) -> None:
    """Removes what the agent added, unless network.keep_network; says what keeps running."""
    openvpn = backends.get("openvpn")
    keep = config.network.keep_network
    if isinstance(openvpn, OpenVpnBackend):
        await openvpn.stop(keep_server=keep)
        if keep:
            log.warning(
                "keep_network: the OpenVPN server keeps running (pid in %s); the next start "
                "adopts it",
                openvpn.paths.pid,
            )
        else:
            log.info("stopped the OpenVPN server")
    if network is not None:
        await network.teardown()
    elif "wireguard" in backends:
        log.info(
            "network.manage is off: %s and its peers stay as they are", config.wireguard.interface
        )
