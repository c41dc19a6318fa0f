"""Every query of the configs domain: devices, their addresses, revocations, the CRL's input.
Never commits; the insert that may collide uses ON CONFLICT DO NOTHING, so the request's
transaction survives the collision."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, literal, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.device_configs import DeviceConfig
from control_plane.indexer.models import ChainNode
from control_plane.nodes.models import Node
from control_plane.subscriptions.models import Subscriber


@dataclass(frozen=True, slots=True)
class ConfigView:
    """A config and its subscriber's expiry as last recorded (None: never recorded)."""

    config: DeviceConfig
    subscriber_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuanceContext:
    """What an issuance checks, read in one statement: the node (None: no such node), whether
    the indexer's mirror shows it Active (None: not mirrored yet) and the subscriber's expiry
    as mirrored (None: not recorded)."""

    node: Node | None
    mirrored_active: bool | None
    mirrored_expiry: datetime | None


@dataclass(frozen=True, slots=True)
class Inserted:
    """What the database filled in: the creation time and the addresses taken."""

    created_at: datetime
    ipv4: str
    ipv6: str


# One statement: the first candidate host index whose address no live config on the node holds
# is inserted if the node is not deleted, the subscriber is under the device limit and the key
# is not live on the node; with it, a bump of the node's revision at commit that logs the config
# (revisions.py: no node row lock before the COMMIT). ON CONFLICT DO NOTHING covers every unique
# index (a concurrent insert took the address, the key or the serial): no row comes back,
# nothing is bumped, and the caller finds out why.
_INSERT_AT_FREE_ADDRESS = text(
    """
    WITH inserted AS (
        INSERT INTO device_configs (id, node_id, subscriber, protocol, public_key, cert_serial,
                                    cert_not_after, certificate, ipv4, ipv6)
        SELECT CAST(:id AS uuid), CAST(:node_id AS varchar), CAST(:subscriber AS varchar),
               CAST(:protocol AS varchar), CAST(:public_key AS varchar),
               CAST(:cert_serial AS varchar), CAST(:cert_not_after AS timestamptz),
               CAST(:certificate AS text), c.ipv4, c.ipv6
        FROM (
            SELECT CAST(:ipv4_network AS inet) + i AS ipv4,
                   CAST(:ipv6_network AS inet) + i AS ipv6, n
            FROM unnest(CAST(:indexes AS bigint[])) WITH ORDINALITY AS picked(i, n)
        ) AS c
        WHERE NOT EXISTS (
                SELECT 1 FROM device_configs d
                WHERE d.node_id = CAST(:node_id AS varchar) AND d.revoked_at IS NULL
                  AND d.ipv4 = c.ipv4)
          AND (SELECT count(*) FROM device_configs d
               WHERE d.subscriber = CAST(:subscriber AS varchar) AND d.revoked_at IS NULL)
              < CAST(:device_limit AS bigint)
          AND NOT EXISTS (
                SELECT 1 FROM device_configs d
                WHERE d.node_id = CAST(:node_id AS varchar) AND d.revoked_at IS NULL
                  AND d.public_key = CAST(:public_key AS varchar))
          AND EXISTS (
                SELECT 1 FROM nodes
                WHERE nodes.id = CAST(:node_id AS varchar) AND nodes.deleted_at IS NULL)
        ORDER BY c.n
        LIMIT 1
        ON CONFLICT DO NOTHING
        RETURNING id, created_at, host(ipv4) AS ipv4, host(ipv6) AS ipv6
    ),
    bump AS (
        INSERT INTO revision_bumps (node_id, config_id)
        SELECT CAST(:node_id AS varchar), id FROM inserted
        RETURNING id
    )
    SELECT created_at, ipv4, ipv6 FROM inserted
    """
)


# Built once (a statement object is immutable; building it costs more than running it).
_LOCKED = (
    select(
        func.pg_advisory_xact_lock(func.hashtextextended(bindparam("lock_key"), 0)).label("locked")
    )
    .cte("locked")
    .prefix_with("MATERIALIZED")
)
_LOCK_AND_READ = (
    select(Node, ChainNode.active, ChainNode.status, Subscriber.expires_at)
    .select_from(_LOCKED)
    .join(Node, Node.id == bindparam("node_id"))
    .outerjoin(ChainNode, ChainNode.node_id == Node.id)
    .outerjoin(Subscriber, Subscriber.address == bindparam("subscriber"))
)


class ConfigRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_and_read(self, subscriber: str, node_id: str) -> IssuanceContext:
        """Takes the subscriber's device lock (a PostgreSQL advisory lock until the transaction
        ends, so the device limit holds across replicas) and reads the node, its mirrored chain
        state and the subscriber's mirrored expiry, in one round trip. A statement after this
        one sees every config committed by the lock's previous holder."""
        row = (
            await self.session.execute(
                _LOCK_AND_READ,
                {
                    "lock_key": f"nodus:devices:{subscriber}",
                    "node_id": node_id,
                    "subscriber": subscriber,
                },
            )
        ).one_or_none()
        if row is None:
            return IssuanceContext(None, None, None)
        node, active, status, expires_at = row
        mirrored = None if active is None else bool(active and status == "active")
        return IssuanceContext(node, mirrored, expires_at)

    async def insert_at_free_address(
        self,
        values: dict[str, Any],
        networks: tuple[str, str],
        indexes: Sequence[int],
        device_limit: int,
    ) -> Inserted | None:
        """Inserts the config (`values` without addresses) at the first of the host `indexes`
        (in the IPv4 and IPv6 `networks`) that no live config on the node holds, within the
        device limit, its node's revision bumped at commit; None if nothing was inserted (see
        `_INSERT_AT_FREE_ADDRESS`)."""
        row = (
            await self.session.execute(
                _INSERT_AT_FREE_ADDRESS,
                {
                    "public_key": None,
                    "cert_serial": None,
                    "cert_not_after": None,
                    "certificate": None,
                    **values,
                    "ipv4_network": networks[0],
                    "ipv6_network": networks[1],
                    "indexes": list(indexes),
                    "device_limit": device_limit,
                },
            )
        ).one_or_none()
        return None if row is None else Inserted(row[0], row[1], row[2])

    async def count_live(self, subscriber: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(DeviceConfig)
            .where(DeviceConfig.subscriber == subscriber, DeviceConfig.revoked_at.is_(None))
        )
        return int(count or 0)

    async def public_key_live(self, node_id: str, public_key: str) -> bool:
        found = await self.session.scalar(
            select(literal(True)).where(
                DeviceConfig.node_id == node_id,
                DeviceConfig.public_key == public_key,
                DeviceConfig.revoked_at.is_(None),
            )
        )
        return found is not None

    async def all_used_ipv4(self, node_id: str) -> set[str]:
        rows = await self.session.scalars(
            select(func.host(DeviceConfig.ipv4)).where(
                DeviceConfig.node_id == node_id, DeviceConfig.revoked_at.is_(None)
            )
        )
        return set(rows)

    def _with_expiry(self) -> Select[DeviceConfig, datetime]:
        return select(DeviceConfig, Subscriber.expires_at).outerjoin(
            Subscriber, Subscriber.address == DeviceConfig.subscriber
        )

    async def get_owned(self, config_id: uuid.UUID, subscriber: str) -> ConfigView | None:
        """The subscriber's config, live or revoked."""
        row = (
            await self.session.execute(
                self._with_expiry().where(
                    DeviceConfig.id == config_id, DeviceConfig.subscriber == subscriber
                )
            )
        ).one_or_none()
        return None if row is None else ConfigView(row[0], row[1])

    async def page_for(
        self,
        subscriber: str,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        *,
        include_revoked: bool = False,
    ) -> list[ConfigView]:
        """The subscriber's live configs (and revoked ones with `include_revoked`), oldest
        first, after the keyset `(created_at, id)`."""
        statement = self._with_expiry().where(DeviceConfig.subscriber == subscriber)
        if not include_revoked:
            statement = statement.where(DeviceConfig.revoked_at.is_(None))
        if after is not None:
            statement = statement.where(
                tuple_(DeviceConfig.created_at, DeviceConfig.id) > tuple_(*after)
            )
        rows = await self.session.execute(
            statement.order_by(DeviceConfig.created_at, DeviceConfig.id).limit(limit)
        )
        return [ConfigView(row[0], row[1]) for row in rows]

    async def revoke_owned(self, config_id: uuid.UUID, subscriber: str) -> str | None:
        """Revokes the subscriber's live config; its node id, None if there is no such live
        config of this subscriber."""
        node_id = await self.session.scalar(
            update(DeviceConfig)
            .where(
                DeviceConfig.id == config_id,
                DeviceConfig.subscriber == subscriber,
                DeviceConfig.revoked_at.is_(None),
            )
            .values(revoked_at=func.now(), revoked_reason="by_owner")
            .returning(DeviceConfig.node_id)
        )
        return node_id
