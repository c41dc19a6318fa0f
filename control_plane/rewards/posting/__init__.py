"""Posting an epoch: gathering its inputs, the epoch job, the oracle outbox transactions that
propose, accept and revoke roots, and the published data (publication)."""
