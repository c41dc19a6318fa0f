"""Helpers for the nodes and configs tests: fresh funded wallets, nodes registered in
NodeRegistry, paid subscriptions, tokens, WireGuard keys and CSRs."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from control_plane.auth.principal import Principal, Role
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.contracts import (
    Deployment,
    Web3Client,
    contract,
    new_node_salt,
    node_id_of,
)
from control_plane.settings import Settings
from tests.support.devchain import dev_account, send_eth, transact

NDS = 10**18
MIN_STAKE = 100 * NDS
FUNDER = 2  # anvil dev account that funds fresh wallets


def new_node_id() -> str:
    return "0x" + secrets.token_hex(32)


def wallet_headers(settings: Settings, address: str) -> dict[str, str]:
    principal = Principal(subject=address.lower(), roles=frozenset({Role.SUBSCRIBER}))
    return {"authorization": f"Bearer {issue_access_token(settings, principal)}"}


def agent_of(node_id: str) -> LocalAccount:
    """The agent key `register_on_chain` gives a node: derived from its id, so a test can sign
    in as (or mint the token of) that node's agent."""
    account: LocalAccount = Account.from_key(keccak(text=f"nodus test agent {node_id.lower()}"))
    return account


def node_headers(settings: Settings, node_id: str) -> dict[str, str]:
    """A token as agent login issues it, for the agent key `register_on_chain` set."""
    principal = Principal(
        subject=node_id,
        roles=frozenset({Role.NODE}),
        node_id=node_id,
        agent=agent_of(node_id).address.lower(),
    )
    return {"authorization": f"Bearer {issue_access_token(settings, principal)}"}


async def fresh_wallet(w3: Web3Client, deployment: Deployment, nds: int) -> LocalAccount:
    """A new wallet holding 1 ETH for gas and `nds` NDS (never used by another test, so no
    cached chain read can leak between tests)."""
    account: LocalAccount = Account.create()
    funder = dev_account(FUNDER)
    await send_eth(w3, funder, account.address, 10**18)
    if nds:
        token = contract(w3, deployment, "NDSToken")
        await transact(w3, funder, token.functions.transfer(account.address, nds))
    return account


async def register_on_chain(
    w3: Web3Client,
    deployment: Deployment,
    operator: LocalAccount,
    stake: int = MIN_STAKE,
    agent: str | None = None,
) -> str:
    """Stakes and registers a new node in NodeRegistry (`operator` needs `stake` NDS); its id
    is derived from the operator and a fresh salt, and its agent key is `agent` (default: the
    key `agent_of` derives from the node id, so `node_headers` can sign in as it)."""
    salt = new_node_salt()
    node_id = node_id_of(operator.address, salt)
    token = contract(w3, deployment, "NDSToken")
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, token.functions.approve(registry.address, stake))
    agent = agent or agent_of(node_id).address
    await transact(w3, operator, registry.functions.register(salt, stake, agent, ""))
    return node_id


async def request_exit(
    w3: Web3Client, deployment: Deployment, operator: LocalAccount, node_id: str
) -> None:
    registry = contract(w3, deployment, "NodeRegistry")
    await transact(w3, operator, registry.functions.requestExit(bytes.fromhex(node_id[2:])))


async def subscribe(
    w3: Web3Client, deployment: Deployment, account: LocalAccount, months: int = 1
) -> int:
    """Pays for `months` periods; the new on-chain expiry (unix seconds)."""
    token = contract(w3, deployment, "NDSToken")
    subscriptions = contract(w3, deployment, "SubscriptionManager")
    price: int = await subscriptions.functions.pricePerPeriod().call()
    await transact(w3, account, token.functions.approve(subscriptions.address, months * price))
    await transact(w3, account, subscriptions.functions.subscribe(account.address, months, price))
    expiry: int = await subscriptions.functions.expiresAt(account.address).call()
    return expiry


async def paying_subscriber(
    w3: Web3Client, deployment: Deployment, months: int = 1
) -> LocalAccount:
    account = await fresh_wallet(w3, deployment, 100 * NDS)
    await subscribe(w3, deployment, account, months)
    return account


@dataclass(frozen=True, slots=True)
class WgKeys:
    private: str
    public: str


def wg_keys() -> WgKeys:
    """A key pair made the way a client makes it: `wg genkey | wg pubkey`."""
    private = subprocess.run(
        ["wg", "genkey"], check=True, capture_output=True, text=True
    ).stdout.strip()
    public = subprocess.run(
        ["wg", "pubkey"], input=private, check=True, capture_output=True, text=True
    ).stdout.strip()
    return WgKeys(private, public)


def run(
    args: list[str], cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a tool (openssl, wg, ...) to completion; its result, not checked."""
    return subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, check=False)


def make_csr(key: Any, common_name: str = "laptop") -> str:
    """A PEM CSR signed by `key` (any cryptography private key)."""
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def node_body(
    node_id: str,
    *,
    protocols: tuple[str, ...] = ("wireguard", "openvpn"),
    endpoint: str | None = None,
    country: str = "DE",
    **extra: Any,
) -> dict[str, Any]:
    """A registration body. Without `endpoint`, a loopback endpoint of its own (live nodes
    cannot share one)."""
    if endpoint is None:
        endpoint = f"127.0.0.1:{secrets.randbelow(40_000) + 20_000}"
    body: dict[str, Any] = {
        "node_id": node_id,
        "protocols": list(protocols),
        "endpoint": endpoint,
        "country": country,
        **extra,
    }
    if "wireguard" in protocols and "wireguard_public_key" not in body:
        body["wireguard_public_key"] = wg_keys().public
    return body


async def post_node(
    client: httpx.AsyncClient, settings: Settings, operator: LocalAccount, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        "/v1/nodes", json=body, headers=wallet_headers(settings, operator.address)
    )


async def sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    """Runs one statement in its own committed transaction; its rows (if any)."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def pem_blocks(profile: str, tag: str) -> str:
    """The text between `<tag>` and `</tag>` in an inline OpenVPN profile."""
    start = profile.index(f"<{tag}>\n") + len(tag) + 3
    return profile[start : profile.index(f"</{tag}>")]
