"""The node's device pools: fetched once from the control plane (`nodus-agent pools`, after the
node is registered there), pinned in the config's [pools] section, and required to run.

Every peer the control plane sends must have its addresses inside these pools (validate.py), so a
broken or compromised control plane cannot make the node route other addresses. That check is
only worth something if the pools do not come from the same answer as the peers: they are
fetched once, checked against the grammar the control plane itself enforces, written to the
config, and changed afterwards only with `--force` (a node registered again gets new pools)."""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

import httpx
from eth_account.signers.local import LocalAccount

from node_agent.client import ControlPlaneClient
from node_agent.config import AgentConfig, ConfigError, Pools, load_config
from node_agent.protocols import protocol_pool

IPV4_PREFIXES = (8, 29)  # the control plane's bounds (control_plane/tunnel/addresses.py)
IPV6_PREFIXES = (48, 124)
_ULA = ipaddress.IPv6Network("fc00::/7")


class PoolsError(ValueError):
    """The control plane's pools cannot be used, or differ from the pinned ones."""


def missing_pools(config: AgentConfig) -> str | None:
    """Why the agent may not run with this config's pools (None: it may)."""
    pinned = ((4, config.pools.ipv4), (6, config.pools.ipv6))
    missing = [f"pools.ipv{version}" for version, pool in pinned if pool is None]
    if not missing:
        return None
    where = str(config.path) if config.path else "the config"
    return (
        f"{' and '.join(missing)} not set in {where}: without the node's pools the agent would "
        "route any address the control plane sends. After registering the node (POST /v1/nodes), "
        f"run `nodus-agent pools --config {where}` to fetch and pin them, or set them by hand"
    )


def require_pools(config: AgentConfig) -> Pools:
    """The config's pools, both set; ConfigError saying how to fix it otherwise."""
    problem = missing_pools(config)
    if problem is not None:
        raise ConfigError(problem)
    return config.pools


def parse_pools_answer(body: object, node_id: str) -> Pools:
    """`GET /v1/agent/pools` -> Pools, under the control plane's own grammar: a private IPv4
    network between /8 and /29 and a unique local IPv6 network between /48 and /124."""
    if not isinstance(body, dict):
        raise PoolsError("the answer is not a JSON object")
    if str(body.get("node_id", "")).lower() != node_id.lower():
        raise PoolsError(f"the answer is about node {body.get('node_id')!r}, not {node_id}")
    ipv4_text, ipv6_text = body.get("ipv4_pool"), body.get("ipv6_pool")
    if not isinstance(ipv4_text, str) or not isinstance(ipv6_text, str):
        raise PoolsError("ipv4_pool and ipv6_pool must be strings")
    try:
        ipv4 = ipaddress.IPv4Network(ipv4_text, strict=True)
        ipv6 = ipaddress.IPv6Network(ipv6_text, strict=True)
    except ValueError as exc:
        raise PoolsError(f"not a network with zero host bits: {exc}") from exc
    if not IPV4_PREFIXES[0] <= ipv4.prefixlen <= IPV4_PREFIXES[1] or not ipv4.is_private:
        raise PoolsError(f"ipv4_pool {ipv4} is not a private network between /8 and /29")
    if ipv4.is_loopback or ipv4.is_link_local or ipv4.is_multicast or ipv4.is_unspecified:
        raise PoolsError(f"ipv4_pool {ipv4} is not a private unicast network")
    if not IPV6_PREFIXES[0] <= ipv6.prefixlen <= IPV6_PREFIXES[1] or not ipv6.subnet_of(_ULA):
        raise PoolsError(f"ipv6_pool {ipv6} is not a unique local network between /48 and /124")
    _check_halves(body, ipv4, ipv6)
    return Pools(ipv4, ipv6)


def _check_halves(
    body: dict[str, object], ipv4: ipaddress.IPv4Network, ipv6: ipaddress.IPv6Network
) -> None:
    """The per-protocol halves the control plane announces must be the ones this agent gives
    its interfaces (protocols.py), or the two would route devices differently. An older
    control plane announces none."""
    for protocol in ("wireguard", "openvpn"):
        for pool in (ipv4, ipv6):
            key = f"{protocol}_ipv{pool.version}_pool"
            if key not in body:
                continue
            expected = str(protocol_pool(pool, protocol))
            if body[key] != expected:
                raise PoolsError(
                    f"{key} is {body[key]!r}, this agent gives {protocol} {expected}: "
                    "upgrade the agent to the control plane's address layout"
                )


async def fetch_pools(
    config: AgentConfig,
    account: LocalAccount,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Pools:
    """Signs in with the agent key and reads the node's pools from the control plane."""
    async with ControlPlaneClient(
        config.control_plane, config.node_id, account, transport=transport
    ) as client:
        body = await client.pools()
    return parse_pools_answer(body, config.node_id)


_SECTION = re.compile(r"^\s*\[\s*pools\s*\]\s*(#.*)?$")
_ANY_SECTION = re.compile(r"^\s*\[")
_KEY = re.compile(r"^\s*(ipv4|ipv6)\s*=")


def pin_pools(path: Path, pools: Pools, *, force: bool = False) -> bool:
    """Writes `pools` into the [pools] section of the TOML config at `path` (appending the
    section if it has none), keeping every other line. Returns False if they were pinned
    already; raises PoolsError if other pools are pinned and `force` is not set."""
    current = load_config(path, environ={}).pools
    if current == pools:
        return False
    if (current.ipv4 or current.ipv6) and not force:
        raise PoolsError(
            f"{path} pins other pools ({current.ipv4}, {current.ipv6}) than the control plane's "
            f"({pools.ipv4}, {pools.ipv6}). If the node was registered again, run with --force; "
            "otherwise find out why the control plane changed them"
        )
    values = {"ipv4": f'"{pools.ipv4}"', "ipv6": f'"{pools.ipv6}"'}
    lines = path.read_text().splitlines()
    output: list[str] = []
    in_section, written = False, False
    for line in lines:
        if _SECTION.match(line):
            in_section, written = True, True
            output.append(line)
            output.extend(f"{key} = {value}" for key, value in values.items())
            continue
        if in_section and _ANY_SECTION.match(line):
            in_section = False
        if in_section and _KEY.match(line):
            continue  # replaced above
        output.append(line)
    if not written:
        output += ["", "[pools]", *(f"{key} = {value}" for key, value in values.items())]
    text = "\n".join(output) + "\n"
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    shutil.copymode(path, temporary)
    temporary.replace(path)
    if load_config(path, environ={}).pools != pools:  # what we wrote must load as written
        raise PoolsError(f"{path}: the pools written do not load back (edit [pools] by hand)")
    return True
