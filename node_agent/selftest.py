"""`nodus-agent selftest`: checks what a node needs to be probed and scored, as the operator's
first question after `run` ("will this node earn?"), each check with a reason code, the score
components it feeds, and what to fix first.

Checks, in order: the WireGuard interface, forwarding, NAT, the signed health answer
(`nodus-health/1`) on the endpoint's host and port, the registration (signing in as the node's
agent), and one probe now by the control plane (`POST /v1/nodes/{id}/probe`, rate limited)."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from node_agent.client import ControlPlaneClient, Refused, Unavailable
from node_agent.config import AgentConfig, is_loopback_listen
from node_agent.health import PROOF_TYPE, health_proof_message
from node_agent.network import NodeNetwork

# The score's components and their weights in percent (control_plane/rewards: uptime from the
# probe rounds, latency from the probes' round trips, handshakes and traffic from the agent).
WEIGHTS = {"uptime": 50, "latency": 15, "handshake": 15, "traffic": 20}
ALL = tuple(WEIGHTS)
PROBED = ("uptime", "latency")
SERVED = ("handshake", "traffic")

FIXES = {
    "ok": "nothing to do",
    "interface_missing": "run `nodus-agent run` (it creates the interface), or create it",
    "forwarding_off": "run the agent with network.manage = true, or `sysctl -w "
    "net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1`",
    "nat_missing": "run the agent (it installs NAT in table inet nodus_agent); give "
    "--egress-interface if there is no default route, or --no-nat if the pools are routed",
    "no_endpoint": 'set endpoint = "HOST:PORT" in the config (the host and port registered)',
    "health_disabled": 'set [health] listen = "endpoint"',
    "health_loopback": "a loopback health address is never probed: set [health] listen = "
    '"endpoint"',
    "health_not_on_endpoint": "the prober fetches the endpoint's port: set [health] listen = "
    '"endpoint"',
    "health_unreachable": "start the agent (`nodus-agent run`) and open the endpoint's TCP port "
    "in the firewall",
    "bad_signature": "the health answer is not signed by this agent key: is another agent "
    "answering on this port?",
    "wrong_node": "the health answer names another node: is another node's agent on this port?",
    "not_registered": "register the node with the command `nodus-agent init` printed "
    "(`nodus node register ...`), or `nodus node set-agent` after a key change",
    "control_plane_unreachable": "check control_plane.url and the route to it",
    "control_plane_too_old": "the control plane has no probe-on-demand route yet; the probers "
    "still probe every round",
    "probe_rate_limited": "try again after the Retry-After",
    "probe_refused": "read the message; check the node is Active on-chain",
    "probe_down": "see the prober's reason and fix",
}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: str  # ok | warn | fail | skip
    reason: str
    detail: str
    fix: str
    components: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return self.level == "fail"


def _check(
    name: str, reason: str, detail: str, components: tuple[str, ...], level: str | None = None
) -> Check:
    return Check(
        name,
        level or ("ok" if reason == "ok" else "fail"),
        reason,
        detail,
        FIXES.get(reason, ""),
        components,
    )


async def network_checks(config: AgentConfig, network: NodeNetwork) -> list[Check]:
    checks: list[Check] = []
    if config.wireguard.enabled:
        problem = await network.interface_problem()
        detail = problem or f"{config.wireguard.interface} is up"
        checks.append(_check("interface", "interface_missing" if problem else "ok", detail, SERVED))
    problem = await network.forwarding_problem()
    checks.append(
        _check("forwarding", "forwarding_off" if problem else "ok", problem or "on", ("traffic",))
    )
    if config.network.nat:
        problem = await network.nat_problem()
        detail = problem or f"table inet {config.network.nft_table} masquerades the pools"
        checks.append(_check("nat", "nat_missing" if problem else "ok", detail, ("traffic",)))
    else:
        checks.append(_check("nat", "ok", "off (--no-nat): the pools are routed", ("traffic",)))
    return checks


def health_gate(config: AgentConfig) -> Check | None:
    """A failed check when the health answer cannot be where the prober looks."""
    if config.endpoint is None:
        return _check("health", "no_endpoint", "the config has no endpoint", PROBED)
    if config.health_listen is None:
        return _check("health", "health_disabled", "health.listen is empty", PROBED)
    host, port = config.health_listen
    if is_loopback_listen(config.health_listen):
        return _check("health", "health_loopback", f"listening on {host}:{port} only", PROBED)
    if port != config.endpoint[1]:
        detail = f"listening on port {port}, the endpoint is on {config.endpoint[1]}"
        return _check("health", "health_not_on_endpoint", detail, PROBED)
    return None


async def signed_health(url: str, node_id: str, agent: str) -> Check:
    """Fetches `url` with a fresh nonce and verifies the `nodus-health/1` proof."""
    nonce = secrets.token_hex(16)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(url, params={"nonce": nonce})
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return _check("health", "health_unreachable", f"{url}: {exc or type(exc).__name__}", PROBED)
    proof = body.get("proof") if isinstance(body, dict) else None
    if not isinstance(proof, dict) or proof.get("type") != PROOF_TYPE:
        return _check("health", "bad_signature", f"{url} answered without a proof", PROBED)
    if str(proof.get("node_id", "")).lower() != node_id.lower():
        return _check("health", "wrong_node", f"the proof names {proof.get('node_id')}", PROBED)
    try:
        text = health_proof_message(node_id, nonce, int(proof["time"]))
        signer = Account.recover_message(encode_defunct(text=text), signature=proof["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        return _check("health", "bad_signature", f"unreadable proof: {exc}", PROBED)
    if signer.lower() != agent.lower():
        return _check("health", "bad_signature", f"signed by {signer}, not {agent}", PROBED)
    status = body.get("reason") or body.get("status")
    return _check("health", "ok", f"{url}: signed by the agent key ({status})", PROBED)


def health_url(config: AgentConfig) -> str:
    assert config.endpoint is not None
    host, port = config.endpoint
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/health"


async def control_plane_checks(config: AgentConfig, account: LocalAccount) -> list[Check]:
    """The registration (signing in reads the node's pools) and one probe now."""
    async with ControlPlaneClient(config.control_plane, config.node_id, account) as client:
        try:
            await client.pools()
        except Refused as exc:
            return [_check("registration", "not_registered", str(exc), ALL)]
        except Unavailable as exc:
            return [_check("registration", "control_plane_unreachable", str(exc), ALL)]
        checks = [_check("registration", "ok", f"signed in as {account.address}", ALL)]
        try:
            status, body, retry_after = await client.request_probe()
        except (httpx.HTTPError, Refused, Unavailable) as exc:
            return [*checks, _check("probe", "control_plane_unreachable", str(exc), PROBED)]
    checks.append(probe_check(status, body, retry_after))
    return checks


def probe_check(status: int, body: dict[str, object], retry_after: float | None) -> Check:
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("detail")
    if status == 405 or (status == 404 and message == "Not Found"):  # no such route (yet)
        return _check(
            "probe", "control_plane_too_old", "POST /v1/nodes/{id}/probe is 404", PROBED, "warn"
        )
    if status == 429:
        wait = f"{retry_after:.0f}s" if retry_after is not None else "a while"
        return _check("probe", "probe_rate_limited", f"retry after {wait}", PROBED, "warn")
    if status >= 400:
        return _check("probe", "probe_refused", f"HTTP {status}: {message}", PROBED)
    verdict, reason = body.get("verdict"), str(body.get("reason", ""))
    if verdict == "up":
        share = body.get("probe_score")
        scored = f", probe score {share}" if share is not None else ""
        return _check("probe", "ok", f"up, {body.get('latency_ms')} ms{scored}", PROBED)
    check = _check("probe", "probe_down", f"down ({reason})", PROBED)
    fix = body.get("fix")
    return Check(check.name, "fail", reason or "probe_down", check.detail, str(fix or ""), PROBED)


def score(checks: list[Check]) -> tuple[int, dict[str, int]]:
    """The most the node can score (percent) with these results, and per component."""
    lost = {name for check in checks if check.failed for name in check.components}
    parts = {name: 0 if name in lost else weight for name, weight in WEIGHTS.items()}
    return sum(parts.values()), parts


def fix_first(checks: list[Check]) -> Check | None:
    """The failed check that costs the most score (the first one on a tie)."""
    failed = [check for check in checks if check.failed]
    if not failed:
        return None
    return max(failed, key=lambda c: (sum(WEIGHTS[n] for n in c.components), -checks.index(c)))


async def run_selftest(config: AgentConfig, account: LocalAccount) -> list[Check]:
    checks = await network_checks(config, NodeNetwork(config))
    gate = health_gate(config)
    checks.append(gate or await signed_health(health_url(config), config.node_id, account.address))
    checks += await control_plane_checks(config, account)
    return checks


def as_json(checks: list[Check]) -> dict[str, object]:
    total, parts = score(checks)
    first = fix_first(checks)
    return {
        "ok": first is None,
        "checks": [asdict(check) for check in checks],
        "score_percent_at_most": total,
        "score_components": parts,
        "fix_first": None if first is None else asdict(first),
    }
