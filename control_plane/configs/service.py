"""Device configs: issuance (checks, address allocation, certificate), listing, revocation.
Raises AppErrors; never commits (the request owns the transaction).

Allocation is safe across replicas because the database decides: one INSERT takes the first of
32 random host indexes that no live config holds, and its ON CONFLICT DO NOTHING turns a
unique-index collision (another request took the address first) into no row, after which the
allocator tries other addresses, up to `ALLOCATION_ATTEMPTS` times. No table or node lock is
taken before the insert; the node's row is locked only by the revision bump just before commit.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane import crypto
from control_plane.configs.repository import ConfigRepository, ConfigView
from control_plane.configs.schemas import (
    ConfigOut,
    ConfigPage,
    ConfigStatus,
    ConfigSummary,
    OpenVpnConfigIn,
    RevokedReason,
    WireGuardConfigIn,
)
from control_plane.device_configs import DeviceConfig
from control_plane.errors import (
    ChainUnavailable,
    ConfigRevoked,
    Conflict,
    Invalid,
    NodeKeyRefused,
    NodeMisconfigured,
    NotFound,
    PaymentRequired,
)
from control_plane.jobs import Services
from control_plane.nodes.models import Node
from control_plane.nodes.repository import NodeRepository
from control_plane.revisions import bump_revision
from control_plane.settings import Settings
from control_plane.subscriptions.expiry import current_expiry
from control_plane.tunnel import openvpn, wireguard
from control_plane.tunnel.addresses import FIRST_DEVICE_INDEX, Pools, device_address
from control_plane.tunnel.grammar import openvpn_port_of, parse_endpoint
from control_plane.tunnel.render_checks import UnsafeConfigValue

log = logging.getLogger("nodus.configs")

ALLOCATION_ATTEMPTS = 10
CANDIDATES_PER_ATTEMPT = 32  # random host indexes checked at once before an insert is tried
FULL_SCAN_MAX_CAPACITY = 1 << 20  # pools up to this size are scanned when the random picks miss


async def create_config(
    session: AsyncSession,
    services: Services,
    subscriber: str,
    body: WireGuardConfigIn | OpenVpnConfigIn,
) -> ConfigOut:
    """Issues a config on the node for the subscriber. Checks, in order: the node exists and is
    not deleted (404), is Active on-chain (409), serves the protocol (422); the subscription is
    active on-chain (402, with the expiry); the device limit (409); the WireGuard key is not
    already live on this node (409). The body's key or CSR was checked before (422).

    The common path is two statements and the commit: the subscriber's device lock with every
    read (`lock_and_read`), then the insert with its checks and a revision bump that happens
    inside the COMMIT (`insert_at_free_address`; revisions.py), so issuances onto one node do
    not queue on its row lock. A node deleted meanwhile is a 404 before the insert, or, if the
    deletion commits between the insert and the commit, the bump revokes the config with the
    node's others."""
    chain, settings = services.chain, services.settings
    subscriber = subscriber.lower()
    configs = ConfigRepository(session)
    context = await configs.lock_and_read(subscriber, body.node_id)
    node = context.node
    if node is None or node.deleted_at is not None:
        raise NotFound("no such node")
    # The mirror says Active: no chain read. Not mirrored yet, or inactive: the chain, once
    # (the mirror may be an indexer run behind a registration or a top-up).
    if not context.mirrored_active and not (await chain.node(node.id)).active:
        raise Conflict("the node is not Active in NodeRegistry; pick another node")
    if body.protocol not in node.protocols:
        raise Invalid(f"the node does not serve {body.protocol} (it serves: {node.protocols})")
    if node.suspended_at is not None:
        raise NodeMisconfigured(_MISCONFIGURED)
    if isinstance(body, WireGuardConfigIn) and body.public_key == node.wireguard_public_key:
        raise NodeKeyRefused(
            "public_key: this is the node's own WireGuard key; generate a key pair for your "
            "device (`wg genkey | tee private.key | wg pubkey`)"
        )

    now = await services.clock.now(chain, settings.chain_clock_seconds)
    expires_at = context.mirrored_expiry
    if expires_at is None or expires_at <= now:  # the mirror says unpaid or lapsed: ask
        expires_at = await current_expiry(
            session, chain, subscriber, settings.expiry_cache_seconds, services.chain_reads, now=now
        )
    if expires_at is None:
        raise PaymentRequired("no subscription: this wallet has never paid; subscribe on-chain")
    if expires_at <= now:
        raise PaymentRequired(
            f"the subscription expired at {expires_at.isoformat()}; renew it on-chain"
        )

    config = await _allocate(services, configs, node, subscriber, body, expires_at)
    return _config_out(settings, node, ConfigView(config, expires_at), now)


async def _allocate(
    services: Services,
    configs: ConfigRepository,
    node: Node,
    subscriber: str,
    body: WireGuardConfigIn | OpenVpnConfigIn,
    expires_at: datetime,
) -> DeviceConfig:
    """Inserts the config at a random free address (and, for OpenVPN, with a freshly signed
    certificate), retrying when a concurrent insert took the address; the config as inserted
    (not added to the session), its node's revision bumped at commit."""
    settings = services.settings
    # Each protocol allocates in its own half (addresses.py): disjoint routes on the node.
    pools = services.pools.get(str(node.ipv4_pool), str(node.ipv6_pool), body.protocol)
    networks = (str(pools.ipv4.network_address), str(pools.ipv6.network_address))
    csr = openvpn.load_csr(body.csr) if isinstance(body, OpenVpnConfigIn) else None
    config_id = uuid.uuid4()
    values: dict[str, Any] = {
        "id": config_id,
        "node_id": node.id,
        "subscriber": subscriber,
        "protocol": body.protocol,
    }
    if isinstance(body, WireGuardConfigIn):
        values["public_key"] = body.public_key
    for attempt in range(ALLOCATION_ATTEMPTS):
        if csr is not None:  # a fresh serial each attempt (one may have collided)
            assert node.openvpn_ca_cert is not None
            assert node.openvpn_ca_key_encrypted is not None
            cert = openvpn.sign_client_certificate(
                ca_cert_pem=node.openvpn_ca_cert,
                ca_key_pem=crypto.decrypt(settings, node.openvpn_ca_key_encrypted),
                csr=csr,
                common_name=str(config_id),
                not_after=expires_at,
            )
            values |= {
                "cert_serial": openvpn.serial_hex(cert.serial),
                "cert_not_after": cert.not_after,
                "certificate": cert.pem,
            }
        candidates = await _candidates(configs, node.id, pools, scan=attempt > 0)
        inserted = await configs.insert_at_free_address(
            values, networks, candidates, settings.device_limit
        )
        if inserted is not None:
            return DeviceConfig(
                **values, ipv4=inserted.ipv4, ipv6=inserted.ipv6, created_at=inserted.created_at
            )
        if not await NodeRepository(configs.session).is_live(node.id):  # deleted meanwhile
            raise NotFound("no such node")
        if await configs.count_live(subscriber) >= settings.device_limit:
            raise Conflict(
                f"device limit reached ({settings.device_limit} live configs); revoke one first"
            )
        if isinstance(body, WireGuardConfigIn) and await configs.public_key_live(
            node.id, body.public_key
        ):
            raise Conflict("this public key already has a live config on this node")
        # Every candidate was taken, or a concurrent insert took the address: again.
    raise Conflict("could not allocate an address on this node (heavy contention); retry")


async def _candidates(
    configs: ConfigRepository, node_id: str, pools: Pools, *, scan: bool
) -> list[int]:
    """Random host indexes to try, in order. After a miss (`scan`), a pool small enough is
    scanned for the indexes no live config holds (as far as committed data shows), so a
    nearly full pool still finds its last free addresses, and a full one is a 409."""
    if not scan or pools.capacity > FULL_SCAN_MAX_CAPACITY:
        return pools.random_indexes(CANDIDATES_PER_ATTEMPT)
    taken = {pools.index_of(address) for address in await configs.all_used_ipv4(node_id)}
    free = [i for i in range(FIRST_DEVICE_INDEX, pools.last_index + 1) if i not in taken]
    if not free:
        raise Conflict("this node's address pool is full; pick another node")
    return secrets.SystemRandom().sample(free, min(len(free), CANDIDATES_PER_ATTEMPT))


def _expires_at(config: DeviceConfig, subscriber_expires_at: datetime | None) -> datetime | None:
    if config.cert_not_after is None:
        return subscriber_expires_at
    if subscriber_expires_at is None:
        return config.cert_not_after
    return min(config.cert_not_after, subscriber_expires_at)


def _status(config: DeviceConfig, expires_at: datetime | None, now: datetime) -> ConfigStatus:
    if config.revoked_at is not None:
        return "revoked"
    if expires_at is None or expires_at <= now:
        return "lapsed"
    return "active"


def _summary_fields(view: ConfigView, now: datetime) -> dict[str, Any]:
    config = view.config
    expires_at = _expires_at(config, view.subscriber_expires_at)
    return {
        "id": config.id,
        "node_id": config.node_id,
        "protocol": config.protocol,
        "address": device_address(str(config.ipv4), str(config.ipv6)),
        "public_key": config.public_key,
        "cert_serial": config.cert_serial,
        "expires_at": expires_at,
        "status": _status(config, expires_at, now),
        "created_at": config.created_at,
        "revoked_at": config.revoked_at,
        # As recorded (null for a revocation from before reasons were recorded).
        "revoked_reason": _RECORDED_REASONS.get(config.revoked_reason or ""),
    }


async def _checked_views(
    session: AsyncSession, services: Services, subscriber: str, views: list[ConfigView]
) -> tuple[list[ConfigView], datetime]:
    """The views with the subscriber's expiry confirmed where it matters, and the chain-aware
    now. The recorded expiry is the indexer's mirror: when it says never paid or lapsed for a
    live config, the chain is read once afresh (never a cached negative), so a wallet that
    has just paid never sees `lapsed`. An unreachable chain leaves the mirror's view."""
    now = await services.clock.now(services.chain, services.settings.chain_clock_seconds)
    recorded = views[0].subscriber_expires_at if views else None
    doubtful = any(
        v.config.revoked_at is None and (recorded is None or recorded <= now) for v in views
    )
    if not doubtful:
        return views, now
    try:
        fresh = await current_expiry(
            session,
            services.chain,
            subscriber,
            services.settings.expiry_cache_seconds,
            services.chain_reads,
            now=now,
        )
    except ChainUnavailable:
        return views, now
    if fresh is None or (recorded is not None and fresh <= recorded):
        return views, now
    return [dataclasses.replace(v, subscriber_expires_at=fresh) for v in views], now


_MISCONFIGURED = (
    "the node's stored settings are outside their grammar, so it is out of service; pick "
    "another node (its operator must fix it)"
)


def render_config(settings: Settings, node: Node, config: DeviceConfig) -> str:
    """The config's text as of now (the node's current endpoint and keys). A node out of
    service, or a stored value the renderer refuses, is `NodeMisconfigured` (409): nothing is
    written."""
    if node.suspended_at is not None:
        raise NodeMisconfigured(_MISCONFIGURED)
    try:
        return _render(settings, node, config)
    except UnsafeConfigValue as exc:
        log.warning("config not rendered: %s", exc, extra={"node_id": node.id})
        raise NodeMisconfigured(_MISCONFIGURED) from exc


def _render(settings: Settings, node: Node, config: DeviceConfig) -> str:
    address = device_address(str(config.ipv4), str(config.ipv6))
    if config.protocol == "wireguard":
        if node.wireguard_public_key is None:
            raise UnsafeConfigValue("the node has no WireGuard public key")
        return wireguard.client_config(
            address=address, server_public_key=node.wireguard_public_key, endpoint=node.endpoint
        )
    if node.openvpn_tls_crypt_key_encrypted is None or node.openvpn_ca_cert is None:
        raise UnsafeConfigValue("the node has no OpenVPN CA or tls-crypt key")
    if config.certificate is None:
        raise UnsafeConfigValue("the config has no certificate")
    try:
        host, _ = parse_endpoint(node.endpoint)
        port = openvpn_port_of(node.endpoint, node.protocols, node.openvpn_port)
    except ValueError as exc:
        raise UnsafeConfigValue("the node's endpoint is outside the endpoint grammar") from exc
    return openvpn.client_profile(
        host=host,
        port=port,
        node_id=node.id,
        ca_cert=node.openvpn_ca_cert,
        client_cert=config.certificate,
        tls_crypt=crypto.decrypt(settings, node.openvpn_tls_crypt_key_encrypted).decode(),
    )


def _config_out(settings: Settings, node: Node, view: ConfigView, now: datetime) -> ConfigOut:
    return ConfigOut(
        **_summary_fields(view, now), config=render_config(settings, node, view.config)
    )


def _encode_cursor(config: DeviceConfig) -> str:
    raw = json.dumps([config.created_at.isoformat(), str(config.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, config_id = json.loads(raw)
        after = datetime.fromisoformat(created_at)
        if after.tzinfo is None:
            raise ValueError("naive time")
        if not isinstance(config_id, str) or after.year < 2000:
            raise ValueError("not a cursor of ours")
        return after, uuid.UUID(config_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Invalid("cursor: not a cursor this API returned") from exc


async def list_configs(
    session: AsyncSession,
    services: Services,
    subscriber: str,
    cursor: str | None,
    limit: int,
    *,
    include_revoked: bool = False,
) -> ConfigPage:
    """The subscriber's live configs (and revoked ones with `include_revoked`), oldest first,
    each with its status."""
    subscriber = subscriber.lower()
    after = _decode_cursor(cursor) if cursor else None
    views = await ConfigRepository(session).page_for(
        subscriber, after, limit + 1, include_revoked=include_revoked
    )
    more = len(views) > limit
    views = views[:limit]
    checked, now = await _checked_views(session, services, subscriber, views)
    return ConfigPage(
        items=[ConfigSummary(**_summary_fields(v, now)) for v in checked],
        next_cursor=_encode_cursor(views[-1].config) if more else None,
    )


_RECORDED_REASONS: dict[str, RevokedReason] = {
    "by_owner": "by_owner",
    "protocol_dropped": "protocol_dropped",
    "node_deleted": "node_deleted",
}


def _revoked_reason(config: DeviceConfig, node: Node | None) -> RevokedReason | None:
    """Why the config was revoked, as recorded; a revoked row without a reason (revoked before
    reasons were recorded, or by the deletion race of migration 0007) is judged from the node:
    deleted, or no longer serving the protocol, else its owner's doing."""
    if config.revoked_at is None:
        return None
    recorded = _RECORDED_REASONS.get(config.revoked_reason or "")
    if recorded is not None:
        return recorded
    if node is None or node.deleted_at is not None:
        return "node_deleted"
    if config.protocol not in node.protocols:
        return "protocol_dropped"
    return "by_owner"


def _revoked_by_operator(config: DeviceConfig, node: Node | None) -> ConfigRevoked | None:
    """The 410 a device gets for a config its node's operator took away (what happened and
    what to do next); None for one its owner revoked (a plain 404, as for any other id)."""
    reason = _revoked_reason(config, node)
    if reason == "node_deleted" or node is None:
        return ConfigRevoked(
            "this config was revoked: its node was deleted by its operator, so the device no "
            "longer connects; issue a new config on another node (POST /v1/configs, or "
            "`nodus up`)"
        )
    if reason == "protocol_dropped":
        if config.protocol in node.protocols:  # turned on again since
            state, protocol = f"it serves {config.protocol} again now", config.protocol
        else:
            state = f"the node no longer serves it (it serves: {', '.join(node.protocols)})"
            protocol = node.protocols[0]
        return ConfigRevoked(
            f"this config was revoked: the node's operator turned {config.protocol} off and "
            f"{state}, so the device no longer connects; issue a new config (POST /v1/configs "
            f"with protocol {protocol} on this node, or on another node)"
        )
    return None


async def get_config(
    session: AsyncSession, services: Services, subscriber: str, config_id: uuid.UUID
) -> ConfigOut:
    """One of the subscriber's live configs with its text, rebuilt from the node's current
    endpoint and keys. Another wallet's config, or one its owner revoked, is a 404; one its
    node's operator revoked (protocol dropped, node deleted) is a 410 saying why and what to
    do next."""
    subscriber = subscriber.lower()
    view = await ConfigRepository(session).get_owned(config_id, subscriber)
    if view is None:
        raise NotFound("no such config")
    node = await NodeRepository(session).get(view.config.node_id)
    if view.config.revoked_at is not None:
        raise _revoked_by_operator(view.config, node) or NotFound("no such config")
    if node is None or node.deleted_at is not None:
        raise NotFound("no such config")
    (checked,), now = await _checked_views(session, services, subscriber, [view])
    return _config_out(services.settings, node, checked, now)


async def revoke_config(session: AsyncSession, subscriber: str, config_id: uuid.UUID) -> None:
    """Revokes the subscriber's live config and bumps its node's revision (the agent drops the
    peer; an OpenVPN certificate's serial joins the node's CRL). Another wallet's config is a
    404."""
    node_id = await ConfigRepository(session).revoke_owned(config_id, subscriber.lower())
    if node_id is None:
        raise NotFound("no such config")
    await bump_revision(session, node_id, [config_id])
