"""Every query of the configs domain: devices, their addresses, revocations, the CRL's input.
Never commits; an insert that may collide runs in its own SAVEPOINT so the request's
transaction survives the collision."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, cast, func, insert, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, INET
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.device_configs import DeviceConfig
from control_plane.subscriptions.models import Subscriber

# The partial unique indexes an insert can run into (device_configs.py).
LIVE_IPV4 = "uq_device_configs_live_ipv4"
LIVE_IPV6 = "uq_device_configs_live_ipv6"
LIVE_PUBLIC_KEY = "uq_device_configs_live_public_key"
CERT_SERIAL = "uq_device_configs_cert_serial"


@dataclass(frozen=True, slots=True)
class ConfigView:
    """A config and its subscriber's expiry as last recorded (None: never recorded)."""

    config: DeviceConfig
    subscriber_expires_at: datetime | None


def _violated_constraint(exc: IntegrityError) -> str:
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None) or getattr(exc.orig, "constraint_name", None)
    return str(name) if name else "unknown"


class ConfigRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_subscriber_devices(self, subscriber: str) -> None:
        """Serializes the subscriber's config issuance until the transaction ends (across
        replicas: a PostgreSQL advisory lock), so the device limit holds under concurrency."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"nodus:devices:{subscriber}"},
        )

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

    async def used_ipv4(self, node_id: str, candidates: Sequence[str]) -> set[str]:
        """Which of `candidates` live configs on the node hold (uses the partial unique
        index)."""
        rows = await self.session.scalars(
            select(func.host(DeviceConfig.ipv4)).where(
                DeviceConfig.node_id == node_id,
                DeviceConfig.revoked_at.is_(None),
                DeviceConfig.ipv4 == func.any(cast(list(candidates), ARRAY(INET))),
            )
        )
        return set(rows)

    async def all_used_ipv4(self, node_id: str) -> set[str]:
        rows = await self.session.scalars(
            select(func.host(DeviceConfig.ipv4)).where(
                DeviceConfig.node_id == node_id, DeviceConfig.revoked_at.is_(None)
            )
        )
        return set(rows)

    async def try_insert(self, values: dict[str, Any]) -> str | None:
        """Inserts a config in a SAVEPOINT; None on success, else the name of the unique index
        it ran into (the savepoint is rolled back, the transaction goes on)."""
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(DeviceConfig).values(**values))
        except IntegrityError as exc:
            return _violated_constraint(exc)
        return None

    def _with_expiry(self) -> Select[DeviceConfig, datetime]:
        return select(DeviceConfig, Subscriber.expires_at).outerjoin(
            Subscriber, Subscriber.address == DeviceConfig.subscriber
        )

    async def get_live_owned(self, config_id: uuid.UUID, subscriber: str) -> ConfigView | None:
        row = (
            await self.session.execute(
                self._with_expiry().where(
                    DeviceConfig.id == config_id,
                    DeviceConfig.subscriber == subscriber,
                    DeviceConfig.revoked_at.is_(None),
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
            .values(revoked_at=func.now())
            .returning(DeviceConfig.node_id)
        )
        return node_id
