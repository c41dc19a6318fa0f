"""`GET /v1/rewards/{address}` and `GET /v1/epochs/{n}/data` on a real anvil: the proof the API
serves makes `claim` pay exactly what it says, one claim pays every unclaimed epoch, and the
published bytes hash to the on-chain dataHash."""

from __future__ import annotations

import httpx
from eth_utils.crypto import keccak

from control_plane.chain.contracts import Deployment, Web3Client, contract
from control_plane.chain.sender import TransactionSender
from control_plane.jobs import Services
from control_plane.rewards.posting.publisher import post_epoch
from tests.control_plane.chain.support import NDS, events
from tests.control_plane.rewards_posting.support import post_and_accept, published
from tests.support.devchain import dev_account, transact

OPERATOR_A, OPERATOR_B = dev_account(2), dev_account(3)
OTHERS: dict[str, int] = {"0x" + f"{i:040x}": i * 10**15 for i in range(1, 20)}


async def claim_with_api_proof(
    client: httpx.AsyncClient, w3: Web3Client, deployment: Deployment, operator_index: int
) -> int:
    """Asks the API for the operator's proof, claims with it from the operator's wallet, and
    returns how much the operator's NDS balance rose."""
    operator = dev_account(operator_index)
    token = contract(w3, deployment, "NDSToken")
    distributor = contract(w3, deployment, "RewardDistributor")
    body = (await client.get(f"/v1/rewards/{operator.address}")).json()
    before = await token.functions.balanceOf(operator.address).call()
    proof = [bytes.fromhex(p[2:]) for p in body["proof"]]
    await transact(
        w3,
        operator,
        distributor.functions.claim(operator.address, int(body["cumulative"]), proof),
    )
    paid: int = await token.functions.balanceOf(operator.address).call() - before
    assert paid == int(body["claimable"])
    return paid


async def test_the_api_proof_claims_exactly_and_one_claim_pays_every_unclaimed_epoch(
    client: httpx.AsyncClient,
    services: Services,
    sender: TransactionSender,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    first: dict[str, int] = {
        OPERATOR_A.address: 123 * NDS + 7,
        OPERATOR_B.address: 50 * NDS,
        **OTHERS,
    }
    await post_and_accept(services, sender, w3, deployment, 1, first)

    response = await client.get(f"/v1/rewards/{OPERATOR_A.address.lower()}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"cumulative", "claimed", "claimable", "epoch", "proof"}
    assert body["cumulative"] == str(123 * NDS + 7)
    assert body["claimed"] == "0"
    assert body["claimable"] == str(123 * NDS + 7)
    assert body["epoch"] == 1
    assert all(p.startswith("0x") and len(p) == 66 for p in body["proof"])

    assert await claim_with_api_proof(client, w3, deployment, 2) == 123 * NDS + 7
    after = (await client.get(f"/v1/rewards/{OPERATOR_A.address}")).json()
    assert after["claimed"] == after["cumulative"] == str(123 * NDS + 7)
    assert after["claimable"] == "0"

    # Epoch 2: A claimed epoch 1 and is paid the difference; B never claimed and one claim
    # pays both epochs.
    second: dict[str, int] = {
        OPERATOR_A.address: 200 * NDS,
        OPERATOR_B.address: 80 * NDS,
        **{a: v * 2 for a, v in OTHERS.items()},
    }
    await post_and_accept(services, sender, w3, deployment, 2, second)

    b_status = (await client.get(f"/v1/rewards/{OPERATOR_B.address}")).json()
    assert b_status["epoch"] == 2
    assert b_status["claimable"] == str(80 * NDS)
    assert await claim_with_api_proof(client, w3, deployment, 3) == 80 * NDS
    assert await claim_with_api_proof(client, w3, deployment, 2) == 200 * NDS - (123 * NDS + 7)
    assert len(await events(w3, deployment, "Claimed")) == 3


async def test_the_published_data_hashes_to_the_on_chain_data_hash(
    client: httpx.AsyncClient,
    services: Services,
    sender: TransactionSender,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    distributor = contract(w3, deployment, "RewardDistributor")
    cumulative: dict[str, int] = {OPERATOR_A.address: 3 * NDS}
    await post_epoch(services, 1, cumulative, published(1, cumulative), sender=sender)

    # Served while the root is pending: the DAO checks it during the challenge window.
    response = await client.get("/v1/epochs/1/data")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    (proposed,) = await events(w3, deployment, "RootProposed")
    assert keccak(response.content) == proposed["args"]["dataHash"]
    assert response.content == published(1, cumulative)
    assert response.headers["etag"] == f'"0x{keccak(response.content).hex()}"'
    pending = await distributor.functions.pendingRoot().call()
    assert pending[1] == keccak(response.content)


async def test_unknown_addresses_and_epochs_are_not_found(
    client: httpx.AsyncClient,
    services: Services,
    sender: TransactionSender,
    w3: Web3Client,
    deployment: Deployment,
) -> None:
    missing = await client.get(f"/v1/rewards/{OPERATOR_A.address}")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no reward epoch has been accepted yet"
    assert (await client.get("/v1/epochs/1/data")).status_code == 404

    await post_and_accept(services, sender, w3, deployment, 1, {OPERATOR_A.address: NDS})

    stranger = await client.get(f"/v1/rewards/{OPERATOR_B.address}")
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/epochs/2/data")).status_code == 404
    assert (await client.get("/v1/rewards/0x1234")).status_code == 422
    assert (await client.get("/v1/epochs/0/data")).status_code == 422
