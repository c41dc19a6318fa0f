"""The pure epoch formula: scoring (v1, v2), allocation, the Merkle tree and the canonical epoch
data. No session, no chain writer: `nodus rewards verify` and the server share exactly this."""
