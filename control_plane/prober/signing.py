"""Probe samples as signed statements: a canonical encoding, EIP-191 signatures, recovery.

The canonical encoding of a sample is compact JSON with sorted keys and only integers, strings
and null, so every implementation produces the same bytes:

    {"attempts":3,"chain_id":31337,"error":null,"node_id":"0x…","prober":"0x…",
     "round":1767225600,"rtt_us":[1200,1100,1150],"type":"nodus-probe/1"}

(one line). The prober signs it as an EIP-191 personal message (`personal_sign`), so the
chain id binds a sample to one deployment and the round to one moment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

SAMPLE_TYPE = "nodus-probe/1"


@dataclass(frozen=True, slots=True)
class Sample:
    """One prober's probe of one node in one round (addresses and ids lower-case)."""

    prober: str
    node_id: str
    round: int  # unix seconds of the round's start
    attempts: int
    rtt_us: tuple[int, ...]  # the answered attempts' round trips, microseconds
    error: str | None  # the last failure, if any ("timeout", "connect_failed", "http_503", ...)

    @property
    def answered(self) -> bool:
        """The node answered the round if any attempt got a 2xx."""
        return len(self.rtt_us) > 0


def canonical_sample(sample: Sample, chain_id: int) -> str:
    return json.dumps(
        {
            "type": SAMPLE_TYPE,
            "chain_id": chain_id,
            "prober": sample.prober.lower(),
            "node_id": sample.node_id.lower(),
            "round": sample.round,
            "attempts": sample.attempts,
            "rtt_us": list(sample.rtt_us),
            "error": sample.error,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )


def sign_sample(account: LocalAccount, sample: Sample, chain_id: int) -> str:
    """The prober's EIP-191 signature of the sample, 0x-hex (65 bytes)."""
    if account.address.lower() != sample.prober.lower():
        raise ValueError("a prober signs only its own samples")
    signed = account.sign_message(encode_defunct(text=canonical_sample(sample, chain_id)))
    return "0x" + bytes(signed.signature).hex()


# Recoveries remembered (a few MB): the same stored samples are checked on every read (the node
# page, each scoring run), and a recovery costs ~0.3 ms of the event loop.
RECOVERIES_CACHED = 16_384


@lru_cache(maxsize=RECOVERIES_CACHED)
def _recover(text: str, signature: str) -> str | None:
    try:
        signer: str = Account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception:  # malformed hex, wrong length, invalid v/r/s: not a signature
        return None
    return signer.lower()


def sample_signer(sample: Sample, chain_id: int, signature: str) -> str | None:
    """The lower-case address that signed the sample, or None if the signature is malformed."""
    return _recover(canonical_sample(sample, chain_id), signature)


def verify_sample(sample: Sample, chain_id: int, signature: str) -> bool:
    """True if the sample's own prober signed it for this chain."""
    return sample_signer(sample, chain_id, signature) == sample.prober.lower()
