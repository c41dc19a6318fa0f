"""Every verdict the probers' view of a node can give, with its reason code and one line on how
to fix it (issue 12: a node marked down must say why and what to do). The probe failure codes
are the prober's own (probe.py, proof.py: a sample's `error`); the rest describe why a node is
not probed at all. An external prober may post a code of its own (`^[a-z0-9_]{1,32}$`): it is
shown as is, with a generic line."""

from __future__ import annotations

from typing import Final

from control_plane.prober.proof import BAD_SIGNATURE, STALE_NONCE, UNSIGNED, WRONG_NODE

OK: Final = "ok"
NOT_ACTIVE_ON_CHAIN: Final = "not_active_on_chain"
NOT_INDEXED: Final = "not_indexed"
DELETED: Final = "deleted"
NEVER_PROBED: Final = "never_probed"
NO_RECENT_ROUNDS: Final = "no_recent_rounds"
NO_ANSWER: Final = "no_answer"  # a down sample whose prober gave no reason

_HEALTH = "the agent's health endpoint (TCP, the endpoint's host and port)"

FIXES: Final[dict[str, str]] = {
    OK: "nothing to fix: the node's agent answered with a valid signed proof",
    "connect_timeout": f"no TCP connection in time to {_HEALTH}: open that TCP port in the "
    "firewall and check the host is up and reachable from the internet",
    "refused": f"the connection to {_HEALTH} was refused or unreachable: start `nodus-agent "
    "run` and make its health server listen on the endpoint's host and port (not 127.0.0.1)",
    "timeout": "connected but no answer in time: the agent or host is overloaded or a "
    "middlebox holds the connection; check `nodus-agent status` and the host's load",
    "protocol_error": "the answer was not valid HTTP: make sure the endpoint's TCP port is "
    "the agent's health server, not another service",
    "http_error": "the health endpoint answered with a non-2xx status: check `nodus-agent "
    "status` for what the agent reports as broken",
    "too_large": "the answer was over 4 KiB: the endpoint's TCP port serves something other "
    "than the agent's health endpoint",
    UNSIGNED: "the answer carried no signed proof: run a current `nodus-agent` on the "
    "endpoint's host and port (a plain web server or an old agent answers there)",
    WRONG_NODE: "the answer was signed for another node: this endpoint is another node's "
    "agent; give each node its own host:port and run its own agent there",
    STALE_NONCE: "the answer did not echo the probe's nonce or the agent's clock is more than "
    "120 s off: sync the host's clock (NTP) and make sure no cache or relay answers for it",
    BAD_SIGNATURE: "the answer was not signed by the node's on-chain agent key: run the agent "
    "with the key NodeRegistry names as `agent` (or `setAgent` to the key it uses)",
    "dns": "the endpoint's host name did not resolve: fix its DNS record or register an IP address",
    "private_address": "the endpoint resolves to a private, loopback or reserved address: "
    "register a public address (PATCH /v1/nodes/{id}); a dev or LAN deployment probes such "
    "addresses only with NODUS_PROBER_ALLOW_PRIVATE_TARGETS=true",
    "invalid_target": "the stored endpoint does not parse: PATCH /v1/nodes/{id} with a valid "
    "host:port",
    NOT_ACTIVE_ON_CHAIN: "the node is not Active in NodeRegistry (exiting, withdrawn, or staked "
    "below minStake), so probers skip it: increase its stake or register a new node",
    NOT_INDEXED: "the control plane has not indexed the node's NodeRegistry registration yet: "
    "wait for the next chain sync (seconds), or check the registration transaction",
    DELETED: "the node was deleted here: register it again with POST /v1/nodes",
    NO_ANSWER: "the prober got no answer and gave no reason: see its samples at "
    "GET /v1/probes?node_id=<id>",
    NEVER_PROBED: "no prober has measured the node yet: wait one probe round",
    NO_RECENT_ROUNDS: "no prober has measured the node lately: the probers may be down or not "
    "see the node as Active; check GET /v1/probes/targets",
}

UNKNOWN_FIX: Final = (
    "a prober reported this code: see the prober's samples at GET /v1/probes?node_id=<id>"
)


def fix_for(reason: str) -> str:
    """The line on how to fix `reason`."""
    return FIXES.get(reason, UNKNOWN_FIX)
