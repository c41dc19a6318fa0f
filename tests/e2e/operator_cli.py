"""The operator's path of README's "Run a node", with the real command-line tools: a fresh wallet
funded with NDS; on the node host `nodus-agent init --operator WALLET ... --json`; on the wallet
host the `nodus node register ...` line init printed, run word for word (only `nodus` becomes
this interpreter's `-m nodus_cli`) with the wallet's key; then `nodus-agent pools` pins the
node's pools. Nothing is registered behind the CLI's back: no direct contract call, no
hand-made API token."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from control_plane.chain.contracts import Deployment, Web3Client
from control_plane.paths import REPO_ROOT
from control_plane.settings import Settings
from tests.e2e.lab import sh
from tests.support.builders import NDS, fresh_wallet


@dataclass(frozen=True, slots=True)
class WalletHost:
    """Where `nodus` runs: the API and chain as that host reaches them."""

    api_url: str
    rpc_url: str
    deployments_dir: Path
    state_dir: Path  # XDG_CONFIG_HOME / XDG_STATE_HOME: the SIWE token cache, never the host's

    @classmethod
    def of(cls, settings: Settings, api_url: str, state_dir: Path) -> WalletHost:
        """This host, with the test's chain, reaching the API at `api_url`."""
        return cls(api_url, settings.rpc_url, settings.deployments_dir, state_dir)

    async def nodus(self, *args: str, key: LocalAccount | None, seconds: float = 180) -> str:
        """`nodus ARGS`; its stdout (fails with stdout and stderr on a non-zero exit)."""
        env = {
            **os.environ,
            "NODUS_API_URL": self.api_url,
            "NODUS_RPC_URL": self.rpc_url,
            "NODUS_DEPLOYMENTS_DIR": str(self.deployments_dir),
            "XDG_CONFIG_HOME": str(self.state_dir / "config"),
            "XDG_STATE_HOME": str(self.state_dir),
            "COLUMNS": "200",
        }
        env.pop("NODUS_KEY_FILE", None)
        env.pop("NODUS_PRIVATE_KEY", None)
        if key is not None:
            env["NODUS_PRIVATE_KEY"] = key.key.hex()
        return await _run([sys.executable, "-m", "nodus_cli", *args], env, seconds)


@dataclass(frozen=True, slots=True)
class OperatorNode:
    node_id: str
    operator: LocalAccount
    config: Path  # the agent's config, written by init, pools pinned
    init: dict[str, Any]  # init's --json answer
    registered: str  # what `nodus node register` printed
    pools: dict[str, Any]  # `nodus-agent pools --json`


async def register_as_operator(
    w3: Web3Client,
    deployment: Deployment,
    wallet_host: WalletHost,
    *,
    config: Path,
    endpoint: str,
    protocols: str,
    agent_control_plane_url: str,
    interface: str,
    init_options: tuple[str, ...] = (),
    node_host: tuple[str, ...] = (),
) -> OperatorNode:
    """README's steps 1 and 2, then `nodus-agent pools`: the node registered on-chain and with
    the control plane, indexed, its agent's config ready for `nodus-agent run`. `node_host`
    prefixes the node host's commands (`ip netns exec NS` for a node in a namespace)."""
    operator = await fresh_wallet(w3, deployment, 1_000 * NDS)
    init = await _agent(
        node_host, "init", "--config", str(config), "--operator", operator.address,
        "--endpoint", endpoint, "--country", "DE", "--protocols", protocols,
        "--control-plane-url", agent_control_plane_url, "--interface", interface,
        *init_options,
    )  # fmt: skip
    words = shlex.split(str(init["register_command"]))
    assert words[:3] == ["nodus", "node", "register"], words
    registered = await wallet_host.nodus(*words[1:], key=operator)
    node_id = str(init["node_id"])
    assert f"node id: {node_id}" in registered, registered
    pools = await _agent(node_host, "pools", "--config", str(config))
    return OperatorNode(
        node_id=node_id,
        operator=operator,
        config=config,
        init=init,
        registered=registered,
        pools=pools,
    )


async def _agent(node_host: tuple[str, ...], *args: str) -> dict[str, Any]:
    """`nodus-agent ARGS --json` on the node host."""
    command = [*node_host, sys.executable, "-m", "node_agent", *args, "--json"]
    out = await _run(command, dict(os.environ), 60)
    answer: dict[str, Any] = json.loads(out)
    return answer


async def _run(command: list[str], env: dict[str, str], seconds: float) -> str:
    result = await sh(*command, check=False, seconds=seconds, env=env, cwd=REPO_ROOT)
    assert result.ok, (
        f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout
