"""Proof of service: checking that a health answer came from the probed node's own agent.

The prober sends a fresh nonce with every request (`GET /health?nonce=<32 hex digits>`); the
node agent answers with `proof`: the node id, the nonce and its clock, signed with the agent key
(EIP-191 `personal_sign` over the text below; node_agent/health.py makes it). The prober counts
the answer only if it recovers to the node's on-chain `agent` (NodeRegistry, as the indexer
mirrors it in `chain_nodes`). Without it any node could claim another node's endpoint and be
credited with that node's answers.

    nodus-health/1
    node: 0x<node id, 64 lower-case hex digits>
    nonce: <nonce, 32 lower-case hex digits>
    time: <unix seconds>
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct

PROOF_TYPE = "nodus-health/1"
# The agent's clock may differ from the prober's by this much (the nonce is what makes an
# answer fresh; the time only bounds how long a captured answer could be relayed).
MAX_CLOCK_SKEW_SECONDS = 120
# A health answer is a few hundred bytes; more is not an agent's answer.
MAX_ANSWER_BYTES = 4_096

# Why a probe attempt counts as down (stored as the sample's `error`).
UNSIGNED = "unsigned"  # no proof (a plain HTTP server, an old agent, not JSON)
WRONG_NODE = "wrong_node"  # signed for another node: this endpoint is another node's
STALE_NONCE = "stale_nonce"  # not our nonce, or a time too far from ours: a replay
BAD_SIGNATURE = "bad_signature"  # not signed by the node's on-chain agent key


def new_nonce() -> str:
    return secrets.token_hex(16)


def health_proof_message(node_id: str, nonce: str, at: int) -> str:
    return f"{PROOF_TYPE}\nnode: {node_id.lower()}\nnonce: {nonce}\ntime: {at}"


def check_answer(body: bytes, *, node_id: str, agent: str, nonce: str, now: float) -> str | None:
    """None if `body` is `node_id`'s answer to `nonce`, signed by `agent`; else why not."""
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return UNSIGNED
    proof = answer.get("proof") if isinstance(answer, dict) else None
    if not isinstance(proof, dict) or proof.get("type") != PROOF_TYPE:
        return UNSIGNED
    claimed, echoed, at, signature = (
        proof.get(name) for name in ("node_id", "nonce", "time", "signature")
    )
    if not (
        isinstance(claimed, str)
        and isinstance(echoed, str)
        and isinstance(at, int)
        and isinstance(signature, str)
    ):
        return UNSIGNED
    if claimed.lower() != node_id.lower():
        return WRONG_NODE
    if echoed != nonce or abs(at - now) > MAX_CLOCK_SKEW_SECONDS:
        return STALE_NONCE
    try:
        message = encode_defunct(text=health_proof_message(node_id, nonce, at))
        signer: str = Account.recover_message(message, signature=signature)
    except Exception:  # malformed hex, wrong length, invalid v/r/s: not a signature
        return BAD_SIGNATURE
    if signer.lower() != agent.lower():
        return BAD_SIGNATURE
    return None
