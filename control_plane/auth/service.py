"""Sign-in: wallet nonces and SIWE logins, node-agent challenges and logins, and the roles a
wallet holds. Raises AppErrors; never commits (the request owns the transaction).

A failed login raises, which rolls the request's transaction back: a nonce or challenge is only
used up by a login that succeeds, and a replay of that login finds it gone."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError as EthValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth import repository
from control_plane.auth.principal import Principal, Role
from control_plane.auth.schemas import AgentChallengeOut, AgentLoginOut, LoginOut, NonceOut
from control_plane.auth.siwe_login import verify_sign_in
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.client import ChainReader
from control_plane.errors import Conflict, Forbidden, NotFound, Unauthorized
from control_plane.settings import Settings

# 128 bits from the OS CSPRNG, as hex: alphanumeric, as EIP-4361 requires of a nonce.
NONCE_BYTES = 16
CHALLENGE_BYTES = 32


# --- wallets ----------------------------------------------------------------------------------


async def issue_nonce(session: AsyncSession, settings: Settings) -> NonceOut:
    await repository.purge_expired_nonces(session)
    nonce = secrets.token_hex(NONCE_BYTES)
    expires_at = await repository.insert_nonce(
        session, nonce, timedelta(seconds=settings.nonce_ttl_seconds)
    )
    return NonceOut(
        nonce=nonce,
        domain=settings.siwe_domain,
        uri=settings.public_url,
        chain_id=settings.chain_id,
        statement=settings.siwe_statement,
        expires_at=expires_at,
    )


async def sign_in(
    session: AsyncSession, settings: Settings, message: str, signature: str
) -> LoginOut:
    """Checks the message and signature, then consumes the nonce (so a bad signature cannot
    burn someone's nonce), and issues an access token with the wallet's roles."""
    verified = verify_sign_in(message, signature, settings, datetime.now(UTC))
    if not await repository.consume_nonce(session, verified.nonce):
        raise Unauthorized(
            "the nonce is unknown, expired or already used; get a new one from GET /v1/auth/nonce"
        )
    roles = await wallet_roles(session, settings, verified.address)
    token = issue_access_token(settings, Principal(subject=verified.address, roles=roles))
    return LoginOut(
        access_token=token,
        expires_in=settings.access_token_ttl_seconds,
        address=verified.address,
        roles=sorted(roles),
    )


async def wallet_roles(session: AsyncSession, settings: Settings, address: str) -> frozenset[Role]:
    """A wallet's roles now: `subscriber` always, `operator` while it operates a node Active
    on-chain (per the indexer's mirror), `admin` if configured. `address` is lower-case."""
    roles = {Role.SUBSCRIBER}
    if await repository.operates_active_node(session, address):
        roles.add(Role.OPERATOR)
    if address in settings.admin_addresses:
        roles.add(Role.ADMIN)
    return frozenset(roles)


# --- node agents ------------------------------------------------------------------------------


async def open_agent_challenge(
    session: AsyncSession, settings: Settings, chain: ChainReader, node_id: str
) -> AgentChallengeOut:
    """The node's open challenge: a fresh one, or the current one while at least half its life
    is left (so asking again, by anyone, can neither pile up rows nor cut short the agent's).
    Only for ids registered on-chain, so the rows are bounded by real nodes."""
    if (await chain.node(node_id)).status == "none":
        raise NotFound("no node with this id is registered on-chain")
    await repository.purge_expired_challenges(session)
    ttl = timedelta(seconds=settings.nonce_ttl_seconds)
    fresh = (
        f"{settings.siwe_domain} asks the Nodus agent of node {node_id} to sign in.\n"
        f"Challenge: {secrets.token_hex(CHALLENGE_BYTES)}"
    )
    opened = await repository.open_challenge(session, node_id, fresh, ttl, reuse_for=ttl / 2)
    if opened is None:  # the current challenge stays; open_challenge locked it for us
        opened = await repository.current_challenge(session, node_id)
    if opened is None:  # pragma: no cover - the locked row cannot have gone
        raise Conflict("the node's challenge changed meanwhile; ask again")
    return AgentChallengeOut(
        node_id=node_id, challenge=opened.challenge, expires_at=opened.expires_at
    )


async def agent_sign_in(
    session: AsyncSession, settings: Settings, chain: ChainReader, node_id: str, signature: str
) -> AgentLoginOut:
    """A node-scoped token for the holder of the node's agent key, read live from the chain
    (the truth, not the indexer's mirror); the node must be Active there."""
    challenge = await repository.consume_challenge(session, node_id)
    if challenge is None:
        raise Unauthorized(
            "this node has no open challenge (expired or used); ask POST /v1/agent/challenge"
        )
    signer = _personal_sign_signer(challenge, signature)
    node = await chain.node(node_id)
    if node.status == "none":
        raise Unauthorized("this node is not registered on-chain")
    if signer is None or signer != node.agent:
        raise Unauthorized("the signature is not by the node's on-chain agent key")
    if not node.active:
        raise Forbidden(
            f"the node is not Active on-chain (status {node.status!r}, or its stake is below "
            "the minimum)"
        )
    principal = Principal(
        subject=node_id, roles=frozenset({Role.NODE}), node_id=node_id, agent=node.agent
    )
    return AgentLoginOut(
        access_token=issue_access_token(settings, principal),
        expires_in=settings.access_token_ttl_seconds,
        node_id=node_id,
    )


def _personal_sign_signer(text: str, signature: str) -> str | None:
    """The lower-case address that personal_signed `text`, or None for a signature that
    recovers no key."""
    try:
        signer: str = Account.recover_message(encode_defunct(text=text), signature=signature)
    except (BadSignature, EthValidationError, ValueError):
        return None
    return signer.lower()
