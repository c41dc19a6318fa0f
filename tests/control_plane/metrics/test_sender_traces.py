"""The oracle sender: a span per send with the transaction's nonce, hash and outcome, and one
when the transaction is final (mined or failed)."""

from __future__ import annotations

import dataclasses

from control_plane.chain.client import Web3ChainReader
from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.sender import TransactionSender
from control_plane.jobs import Services
from control_plane.settings import OracleSettings
from control_plane.tracing import tracer_of
from tests.control_plane.chain.support import oracle_settings, services
from tests.control_plane.metrics.traced import attributes, named, recording

__all__ = ["oracle_settings", "services"]


async def test_a_send_and_its_receipt_are_spans_with_nonce_hash_and_outcome(
    services: Services, oracle_settings: OracleSettings, w3: Web3Client, deployment: Deployment
) -> None:
    provider, exported = recording()
    traced = dataclasses.replace(services, tracer=tracer_of(provider))
    assert isinstance(services.chain, Web3ChainReader)
    services.chain.observe(traced.metrics, traced.tracer)
    sender = TransactionSender.for_services(traced, oracle_settings)
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    data = bytes.fromhex(subscriptions.encode_abi("flushRevenue")[2:])

    await sender.submit("flush-traced", subscriptions.address, data)
    entry = await sender.wait("flush-traced")

    assert entry.status == "mined"
    (send,) = named(exported, "oracle send")
    assert attributes(send) == {
        "nodus.tx.key": "flush-traced",
        "nodus.tx.nonce": entry.nonce,
        "nodus.tx.hash": entry.mined_tx_hash,
        "nodus.tx.outcome": "sent",
    }
    rpc = [s for s in exported.get_finished_spans() if s.name == "rpc eth_sendRawTransaction"]
    assert rpc
    assert rpc[0].parent is not None
    assert rpc[0].parent.span_id == send.context.span_id
    (final,) = named(exported, "oracle tx final")
    assert attributes(final)["nodus.tx.outcome"] == "mined"
    assert attributes(final)["nodus.tx.hash"] == entry.mined_tx_hash
