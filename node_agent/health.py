"""A tiny HTTP server for the probers: `GET /health` answers `{"status", "revision", "peers"}`
(200 while the node serves its peers, 503 otherwise).

Proof of service: a prober sends a fresh nonce (`GET /health?nonce=<32 hex digits>`) and the
answer carries `proof`, the node id, the nonce and the time signed with the node's agent key
(the on-chain `agent` of NodeRegistry), so the answer is bound to this node: another node whose
endpoint points here gets answers signed for this node, which its probers count as down. The
signed text (EIP-191 `personal_sign`, one line each, `\\n` between, no trailing newline):

    nodus-health/1
    node: 0x<the node id, 64 lower-case hex digits>
    nonce: <the prober's nonce, 32 lower-case hex digits>
    time: <unix seconds>

The first line keeps it apart from anything else the agent key signs (the control plane's
sign-in challenge); the nonce grammar is fixed, so a caller cannot make the key sign anything
else. Signing costs CPU, so each client address (an IPv6 client's /64) gets a few signed answers
a second (a prober sends a handful per round); beyond that the answer is 429.

Served by httpd.py: one request per connection, bodies never read, a slow client cut."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from node_agent.httpd import Request, Response, start_http_server

log = logging.getLogger("nodus.agent.health")

Snapshot = Callable[[], tuple[int, dict[str, Any]]]
PROOF_TYPE = "nodus-health/1"
NONCE = re.compile(r"^[0-9a-f]{32}$")
# Signed answers per client address: a burst of 20, then 5 a second.
SIGNATURES_BURST = 20
SIGNATURES_PER_SECOND = 5.0
MAX_TRACKED_CLIENTS = 1_024


def health_proof_message(node_id: str, nonce: str, at: int) -> str:
    """The text the agent key signs for one health answer (see the module docstring)."""
    return f"{PROOF_TYPE}\nnode: {node_id.lower()}\nnonce: {nonce}\ntime: {at}"


@dataclass
class HealthProver:
    """Signs health answers as the node's agent; limits signatures per client address."""

    node_id: str
    account: LocalAccount
    clock: Callable[[], float] = time.time
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, at = self._buckets.pop(client, (float(SIGNATURES_BURST), now))
        tokens = min(float(SIGNATURES_BURST), tokens + (now - at) * SIGNATURES_PER_SECOND)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)
        return allowed

    def proof(self, nonce: str) -> dict[str, Any]:
        at = int(self.clock())
        text = health_proof_message(self.node_id, nonce, at)
        signature = self.account.sign_message(encode_defunct(text=text)).signature
        return {
            "type": PROOF_TYPE,
            "node_id": self.node_id.lower(),
            "nonce": nonce,
            "time": at,
            "signature": "0x" + bytes(signature).hex(),
        }


def client_key(host: str) -> str:
    """Whose signing budget a request spends: an IPv4 address, or an IPv6 client's /64 (one
    line gets a whole /64 and could otherwise rotate through it)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 client on a dual-stack socket
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _nonce(target: str) -> tuple[str | None, bool]:
    """The nonce of `/health?nonce=...` (None if absent) and whether the query is well formed."""
    _, _, query = target.partition("?")
    if not query:
        return None, True
    try:
        fields = parse_qs(query, strict_parsing=True, max_num_fields=4)
    except ValueError:
        return None, False
    values = fields.get("nonce", [])
    if set(fields) - {"nonce"} or len(values) > 1 or (values and not NONCE.match(values[0])):
        return None, False
    return (values[0] if values else None), True


async def start_health_server(
    host: str, port: int, snapshot: Snapshot, prover: HealthProver | None = None
) -> asyncio.Server:
    def answer(request: Request) -> Response:
        nonce, well_formed = _nonce(request.target) if request.well_formed else (None, False)
        body: dict[str, Any]
        if not request.well_formed:
            status, body = 400, {"error": "bad request"}
        elif request.path != "/health":
            status, body = 404, {"error": "not found"}
        elif request.method not in ("GET", "HEAD"):
            status, body = 405, {"error": "method not allowed"}
        elif not well_formed:
            status, body = 400, {"error": "the only parameter is nonce: 32 hex digits"}
        elif (
            nonce is not None
            and prover is not None
            and not prover.allow(client_key(request.client))
        ):
            status, body = 429, {"error": "too many signed answers; slow down"}
        else:
            status, body = snapshot()
            if nonce is not None and prover is not None and request.method == "GET":
                body = {**body, "proof": prover.proof(nonce)}
        return Response(status, "application/json", json.dumps(body).encode())

    server = await start_http_server(host, port, answer, "health")
    log.info("health endpoint on http://%s:%d/health", host or "*", port)
    return server
