"""Nodes: registration by their on-chain operator (read live from NodeRegistry), the public
list, changes and soft deletion by the owner, and each node's OpenVPN material for its agent.
Raises AppErrors; never commits (the request owns the transaction)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import crypto
from control_plane.addresses import require_public_endpoint
from control_plane.chain.client import ChainReader
from control_plane.errors import (
    Conflict,
    EndpointInUse,
    Forbidden,
    Invalid,
    NodeMisconfigured,
    NodeNotActive,
    NotFound,
)
from control_plane.indexer.models import ChainNode
from control_plane.nodes.models import Node
from control_plane.nodes.repository import (
    UNSCORED,
    NodeFilter,
    NodeRepository,
    NodeSort,
    NodeView,
    PageAfter,
)
from control_plane.nodes.schemas import (
    NodeIn,
    NodeOut,
    NodePage,
    NodePatch,
    check_node_shape,
    openvpn_port_of,
)
from control_plane.revisions import bump_revision
from control_plane.settings import Settings
from control_plane.tunnel.addresses import Pools, default_pools
from control_plane.tunnel.grammar import stored_node_problem
from control_plane.tunnel.openvpn import build_crl, create_node_pki

log = logging.getLogger("nodus.nodes")

PPM = 1_000_000  # scores are stored in parts per million
# A revoked certificate stays in the CRL until this long after its own expiry (clock skew).
CRL_EXPIRED_GRACE = timedelta(days=1)


def _pki_values(settings: Settings, node_id: str) -> dict[str, Any]:
    pki = create_node_pki(node_id)
    return {
        "openvpn_ca_cert": pki.ca_cert,
        "openvpn_ca_key_encrypted": crypto.encrypt(settings, pki.ca_key),
        "openvpn_server_cert": pki.server_cert,
        "openvpn_server_key_encrypted": crypto.encrypt(settings, pki.server_key),
        "openvpn_tls_crypt_key_encrypted": crypto.encrypt(settings, pki.tls_crypt_key),
    }


def _stored_openvpn_port(node: Node) -> int:
    """OpenVPN's port from the stored row; a row whose endpoint fails the grammar (a node out
    of service) is a 409 `node_misconfigured`, never a 500."""
    try:
        return openvpn_port_of(node.endpoint, node.protocols, node.openvpn_port)
    except ValueError as exc:
        raise NodeMisconfigured(
            "the node's stored endpoint is outside the endpoint grammar; its operator must "
            "PATCH a valid one"
        ) from exc


def node_out(view: NodeView, *, owner: bool) -> NodeOut:
    node = view.node
    serves_openvpn = "openvpn" in node.protocols
    return NodeOut(
        id=node.id,
        operator=node.operator,
        protocols=[p for p in ("wireguard", "openvpn") if p in node.protocols],
        endpoint=node.endpoint,
        openvpn_port=(_stored_openvpn_port(node) if serves_openvpn else None),
        country=node.country,
        wireguard_public_key=node.wireguard_public_key,
        online=view.online,
        last_heartbeat_at=node.last_heartbeat_at,
        score=None if node.score_ppm is None else node.score_ppm / PPM,
        score_epoch=node.score_epoch,
        created_at=node.created_at,
        ipv4_pool=str(node.ipv4_pool) if owner else None,
        ipv6_pool=str(node.ipv6_pool) if owner else None,
        openvpn_ca_certificate=node.openvpn_ca_cert if owner and serves_openvpn else None,
    )


async def register_node(
    session: AsyncSession, chain: ChainReader, settings: Settings, caller: str, body: NodeIn
) -> NodeOut:
    """Registers the node if NodeRegistry says it is Active and `caller` is its operator (read
    live, not from the index: the operator may have registered a block ago). A node deleted here
    earlier can be registered again (new pools and OpenVPN material; its revision carries on)."""
    require_public_endpoint(body.endpoint, allow_private=settings.allow_private_endpoints)
    nodes = NodeRepository(session)
    existing = await nodes.get(body.node_id)
    if existing is not None and existing.deleted_at is None:
        raise Conflict("this node is already registered")
    on_chain = await chain.node(body.node_id)
    if on_chain.status == "none":
        raise Forbidden("this node id is not registered in NodeRegistry")
    if on_chain.operator != caller.lower():
        raise Forbidden("only the node's on-chain operator can register it")
    if not on_chain.active:
        raise Forbidden(f"the node is not Active in NodeRegistry (status: {on_chain.status})")

    await _claim_endpoint(nodes, body.endpoint, body.node_id)
    ipv4_default, ipv6_default = default_pools(body.node_id)
    values: dict[str, Any] = {
        "operator": on_chain.operator,
        "protocols": body.protocols,
        "endpoint": body.endpoint,
        "openvpn_port": body.openvpn_port,
        "country": body.country,
        "wireguard_public_key": body.wireguard_public_key,
        "ipv4_pool": body.ipv4_pool or ipv4_default,
        "ipv6_pool": body.ipv6_pool or ipv6_default,
        "openvpn_ca_cert": None,
        "openvpn_ca_key_encrypted": None,
        "openvpn_server_cert": None,
        "openvpn_server_key_encrypted": None,
        "openvpn_tls_crypt_key_encrypted": None,
        "suspended_at": None,
        "suspended_reason": None,
    }
    if "openvpn" in body.protocols:
        values.update(_pki_values(settings, body.node_id))
    if existing is None:
        if not await nodes.insert({"id": body.node_id, "revision": 0, **values}):
            raise Conflict("this node is already registered")
    elif not await nodes.revive(body.node_id, values):
        raise Conflict("this node is already registered")
    # Announced on commit, so every replica's feed knows the node before its agent first polls.
    await bump_revision(session, body.node_id)
    view = await nodes.get_live_view(body.node_id)
    assert view is not None
    return node_out(view, owner=True)


async def _claim_endpoint(nodes: NodeRepository, endpoint: str, node_id: str) -> None:
    """Live nodes cannot share an endpoint (a second one would receive the first one's
    subscribers' traffic, or split its probes and rewards)."""
    await nodes.lock_endpoint(endpoint)
    if await nodes.endpoint_user(endpoint, except_id=node_id) is not None:
        raise EndpointInUse(
            f"another live node already uses the endpoint {endpoint}; each node needs its own "
            "host:port"
        )


def _in_service(node: Node) -> bool:
    """Whether the node may be shown to clients: not taken out of service, and its stored
    endpoint and country pass the grammar (checked again here, whatever the row holds)."""
    if node.suspended_at is not None:
        return False
    problem = stored_node_problem(node.endpoint, node.country)
    if problem is not None:
        log.warning("node hidden: %s", problem, extra={"node_id": node.id})
        return False
    return True


def _encode_cursor(node: Node, sort: NodeSort) -> str:
    position: list[Any] = [node.created_at.isoformat(), node.id]
    if sort == "score":
        position.insert(0, UNSCORED if node.score_ppm is None else node.score_ppm)
    raw = json.dumps(position).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: NodeSort) -> PageAfter:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
        if not isinstance(position, list) or len(position) != (3 if sort == "score" else 2):
            raise ValueError("not a cursor of this order")
        created_at, node_id = position[-2:]
        after = datetime.fromisoformat(created_at)
        if after.tzinfo is None:
            raise ValueError("naive time")
        if not isinstance(node_id, str) or not re.fullmatch(r"0x[0-9a-f]{64}", node_id):
            raise ValueError("not a node id")
        if after.year < 2000:
            raise ValueError("not a cursor of ours")
        if sort == "score":
            score = position[0]
            if type(score) is not int or not UNSCORED <= score <= PPM:
                raise ValueError("not a score")
            return score, after, node_id
        return after, node_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Invalid("cursor: not a cursor this API returned (for this sort)") from exc


async def list_nodes(
    session: AsyncSession,
    filters: NodeFilter,
    cursor: str | None,
    limit: int,
    sort: NodeSort = "created",
) -> NodePage:
    after = _decode_cursor(cursor, sort) if cursor else None
    views = await NodeRepository(session).page(filters, after, limit + 1, sort)
    more = len(views) > limit
    views = views[:limit]
    return NodePage(
        items=[node_out(v, owner=False) for v in views if _in_service(v.node)],
        next_cursor=_encode_cursor(views[-1].node, sort) if more else None,
    )


async def get_node(session: AsyncSession, node_id: str, caller: str | None) -> NodeOut:
    view = await NodeRepository(session).get_live_view(node_id)
    if view is None:
        raise NotFound("no such node")
    owner = caller is not None and caller.lower() == view.node.operator
    if not owner and not _in_service(view.node):
        raise NotFound("no such node")
    return node_out(view, owner=owner)


async def _owned(nodes: NodeRepository, node_id: str, caller: str) -> tuple[Node, ChainNode | None]:
    """The live node, locked, if `caller` operates it. Nodes are public, so another wallet gets
    403 (not a 404 that would pretend the node does not exist)."""
    node = await nodes.lock_live(node_id)
    if node is None:
        raise NotFound("no such node")
    if node.operator != caller.lower():
        raise Forbidden("only the node's operator can change it")
    on_chain = await nodes.chain_state(node_id)
    if on_chain is not None and on_chain.operator != caller.lower():
        raise Forbidden("only the node's on-chain operator can change it")
    return node, on_chain


async def _changeable(nodes: NodeRepository, chain: ChainReader, node_id: str, caller: str) -> Node:
    """`_owned`, and the node still Active-status in NodeRegistry: per the indexer's mirror, or
    read live when the indexer has not seen the node yet. An exiting or withdrawn node cannot
    be changed (only deleted)."""
    node, on_chain = await _owned(nodes, node_id, caller)
    if on_chain is None:
        live = await chain.node(node_id)
        operator, status = live.operator, live.status
    else:
        operator, status = on_chain.operator, on_chain.status
    if operator != caller.lower():
        raise Forbidden("only the node's on-chain operator can change it")
    if status != "active":
        raise NodeNotActive(
            f"the node is {status} in NodeRegistry; an exiting or withdrawn node cannot be "
            "changed (delete it, or register a new node)"
        )
    return node


async def update_node(
    session: AsyncSession,
    chain: ChainReader,
    settings: Settings,
    caller: str,
    node_id: str,
    patch: NodePatch,
) -> NodeOut:
    """Changes what the owner sent. Adding OpenVPN creates the node's CA and server
    credentials (if it never had them); dropping a protocol revokes the node's live configs of
    that protocol and bumps its revision. A node out of service returns to service once its
    endpoint and country (as changed) pass the grammar."""
    nodes = NodeRepository(session)
    node = await _changeable(nodes, chain, node_id, caller)
    old_protocols = list(node.protocols)
    given = patch.model_fields_set
    protocols: list[str] = list(patch.protocols) if patch.protocols is not None else node.protocols
    endpoint = patch.endpoint if patch.endpoint is not None else node.endpoint
    if patch.endpoint is not None:
        require_public_endpoint(endpoint, allow_private=settings.allow_private_endpoints)
    key = (
        patch.wireguard_public_key if "wireguard_public_key" in given else node.wireguard_public_key
    )
    port = patch.openvpn_port if "openvpn_port" in given else node.openvpn_port
    if "wireguard_public_key" not in given and "wireguard" not in protocols:
        key = None  # dropping WireGuard drops its key
    country = patch.country if patch.country is not None else node.country
    problem = stored_node_problem(endpoint, country)
    if problem is not None:
        raise Invalid(f"the node is out of service because {problem}: send a valid value")
    try:
        check_node_shape(protocols, endpoint, key, port)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    if endpoint != node.endpoint:
        await _claim_endpoint(nodes, endpoint, node_id)

    values: dict[str, Any] = {
        "protocols": protocols,
        "endpoint": endpoint,
        "country": country,
        "wireguard_public_key": key,
        "openvpn_port": port,
        "suspended_at": None,
        "suspended_reason": None,
    }
    if "openvpn" in protocols and node.openvpn_ca_cert is None:
        values.update(_pki_values(settings, node_id))
    await nodes.update(node_id, values)

    revoked = 0
    for dropped in sorted(set(old_protocols) - set(protocols)):
        revoked += await nodes.revoke_live_on_node(node_id, dropped)
    if revoked:
        await bump_revision(session, node_id)
    view = await nodes.get_live_view(node_id)
    assert view is not None
    return node_out(view, owner=True)


async def delete_node(session: AsyncSession, caller: str, node_id: str) -> None:
    """Soft-deletes the node: hidden from the API, its live configs revoked, its revision bumped
    (its agent's next poll gets an empty set)."""
    nodes = NodeRepository(session)
    await _owned(nodes, node_id, caller)  # locks the row: no config is issued meanwhile
    await nodes.soft_delete(node_id)
    await NodeRepository(session).revoke_live_on_node(node_id)
    await bump_revision(session, node_id)


# --- For the agent feed ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenVpnMaterial:
    """What a node's OpenVPN server needs: PEM certificates and keys (decrypted), the tls-crypt
    static key, the current CRL (valid 7 days: refresh it whenever the node's revision moves and
    at least daily), the UDP port to listen on and the node's own tunnel addresses."""

    node_id: str
    ca_cert: str
    server_cert: str
    server_key: str
    tls_crypt_key: str
    crl: str
    port: int
    ipv4_pool: str
    ipv6_pool: str
    server_addresses: tuple[str, str]  # e.g. ("10.8.0.1/16", "fd12:3456:789a::1/112")


async def _openvpn_node(session: AsyncSession, node_id: str) -> Node:
    node = await NodeRepository(session).get(node_id)
    if node is None or node.deleted_at is not None:
        raise NotFound("no such node")
    if "openvpn" not in node.protocols or node.openvpn_ca_cert is None:
        raise NotFound("this node does not serve OpenVPN")
    return node


async def _crl(session: AsyncSession, settings: Settings, node: Node) -> str:
    assert node.openvpn_ca_cert is not None
    assert node.openvpn_ca_key_encrypted is not None
    now = datetime.now(UTC)
    revoked = await NodeRepository(session).revoked_serials(node.id, now - CRL_EXPIRED_GRACE)
    return build_crl(
        ca_cert_pem=node.openvpn_ca_cert,
        ca_key_pem=crypto.decrypt(settings, node.openvpn_ca_key_encrypted),
        revoked=[(int(serial, 16), revoked_at) for serial, revoked_at in revoked],
        now=now,
    )


async def openvpn_crl(session: AsyncSession, settings: Settings, node_id: str) -> str:
    """The node's current CRL (PEM), signed by its CA: every revoked certificate of the node that
    has not expired. NotFound if the node is deleted or does not serve OpenVPN."""
    return await _crl(session, settings, await _openvpn_node(session, node_id))


async def openvpn_material(
    session: AsyncSession, settings: Settings, node_id: str
) -> OpenVpnMaterial:
    """Everything the node's OpenVPN server needs (for the agent feed: hand it only to that
    node's own agent). NotFound if the node is deleted or does not serve OpenVPN."""
    node = await _openvpn_node(session, node_id)
    assert node.openvpn_server_cert is not None
    assert node.openvpn_server_key_encrypted is not None
    assert node.openvpn_tls_crypt_key_encrypted is not None
    # OpenVPN's `server` directives take its half of the pools (addresses.py).
    pools = Pools.of(str(node.ipv4_pool), str(node.ipv6_pool)).for_protocol("openvpn")
    return OpenVpnMaterial(
        node_id=node.id,
        ca_cert=node.openvpn_ca_cert or "",
        server_cert=node.openvpn_server_cert,
        server_key=crypto.decrypt(settings, node.openvpn_server_key_encrypted).decode(),
        tls_crypt_key=crypto.decrypt(settings, node.openvpn_tls_crypt_key_encrypted).decode(),
        crl=await _crl(session, settings, node),
        port=_stored_openvpn_port(node),
        ipv4_pool=str(pools.ipv4),
        ipv6_pool=str(pools.ipv6),
        server_addresses=pools.node_addresses(),
    )
