"""Every query of the nodes domain. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.device_configs import DeviceConfig
from control_plane.indexer.models import ChainNode
from control_plane.nodes.models import Node

ONLINE_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class NodeView:
    node: Node
    online: bool


@dataclass(frozen=True, slots=True)
class NodeFilter:
    country: str | None = None
    protocol: str | None = None
    online: bool | None = None
    min_score_ppm: int | None = None  # only nodes scored at least this (unscored ones drop out)


NodeSort = Literal["created", "score"]
# Where a page ends: `(created_at, id)` for the default order; `(score, created_at, id)` by
# score, where an unscored node's score is UNSCORED (after every scored one).
PageAfter = tuple[datetime, str] | tuple[int, datetime, str]
UNSCORED = -1


def _online() -> ColumnElement[bool]:
    return func.coalesce(Node.last_heartbeat_at > func.now() - ONLINE_WINDOW, False)


class NodeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, node_id: str) -> Node | None:
        """The node (deleted or not), freshly read."""
        return await self.session.scalar(
            select(Node).where(Node.id == node_id).execution_options(populate_existing=True)
        )

    async def get_live_view(self, node_id: str) -> NodeView | None:
        row = (
            await self.session.execute(
                select(Node, _online().label("online"))
                .where(Node.id == node_id, Node.deleted_at.is_(None))
                .execution_options(populate_existing=True)
            )
        ).one_or_none()
        return None if row is None else NodeView(row[0], bool(row[1]))

    async def insert(self, values: dict[str, Any]) -> bool:
        """Inserts the node; False if a node with its id exists (deleted or not)."""
        inserted = await self.session.scalar(
            insert(Node)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Node.id])
            .returning(Node.id)
        )
        return inserted is not None

    async def revive(self, node_id: str, values: dict[str, Any]) -> bool:
        """Registers a soft-deleted node again with `values` (its revision carries on);
        False if the node is not deleted (or not there)."""
        revived = await self.session.scalar(
            update(Node)
            .where(Node.id == node_id, Node.deleted_at.is_not(None))
            .values(**values, deleted_at=None, last_heartbeat_at=None, updated_at=func.now())
            .returning(Node.id)
        )
        return revived is not None

    async def lock_live(self, node_id: str) -> Node | None:
        """The live node, its row locked until the transaction ends (for a change by its
        owner)."""
        return await self.session.scalar(
            select(Node)
            .where(Node.id == node_id, Node.deleted_at.is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def update(self, node_id: str, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(Node).where(Node.id == node_id).values(**values, updated_at=func.now())
        )

    async def soft_delete(self, node_id: str) -> None:
        await self.session.execute(
            update(Node)
            .where(Node.id == node_id, Node.deleted_at.is_(None))
            .values(deleted_at=func.now(), updated_at=func.now())
        )

    async def lock_endpoint(self, endpoint: str) -> None:
        """Serializes registrations and changes to one endpoint until the transaction ends, so
        two requests cannot both find it free."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"node endpoint {endpoint}"},
        )

    async def endpoint_user(self, endpoint: str, except_id: str) -> str | None:
        """The id of another live node using `endpoint`, if any."""
        return await self.session.scalar(
            select(Node.id)
            .where(Node.endpoint == endpoint, Node.deleted_at.is_(None), Node.id != except_id)
            .limit(1)
        )

    async def chain_state(self, node_id: str) -> ChainNode | None:
        """The node as the indexer last saw it in NodeRegistry (None: not indexed yet)."""
        return await self.session.scalar(
            select(ChainNode)
            .where(ChainNode.node_id == node_id)
            .execution_options(populate_existing=True)
        )

    async def is_live(self, node_id: str) -> bool:
        deleted = await self.session.execute(select(Node.deleted_at).where(Node.id == node_id))
        row = deleted.one_or_none()
        return row is not None and row[0] is None

    async def page(
        self,
        filters: NodeFilter,
        after: PageAfter | None,
        limit: int,
        sort: NodeSort = "created",
    ) -> list[NodeView]:
        """Live nodes matching `filters`, a page after the keyset `after`: oldest first, or
        (`sort="score"`) best latest score first, unscored last, then oldest first."""
        statement = select(Node, _online().label("online")).where(
            Node.deleted_at.is_(None), Node.suspended_at.is_(None)
        )
        if filters.country is not None:
            statement = statement.where(Node.country == filters.country)
        if filters.protocol is not None:
            statement = statement.where(Node.protocols.contains([filters.protocol]))
        if filters.online is True:
            statement = statement.where(Node.last_heartbeat_at > func.now() - ONLINE_WINDOW)
        elif filters.online is False:
            statement = statement.where(
                or_(
                    Node.last_heartbeat_at.is_(None),
                    Node.last_heartbeat_at <= func.now() - ONLINE_WINDOW,
                )
            )
        if filters.min_score_ppm is not None:
            statement = statement.where(Node.score_ppm >= filters.min_score_ppm)
        score = func.coalesce(Node.score_ppm, UNSCORED)
        if sort == "score":
            if after is not None:
                assert len(after) == 3
                after_score, after_created, after_id = after
                statement = statement.where(
                    or_(
                        score < after_score,
                        and_(
                            score == after_score,
                            tuple_(Node.created_at, Node.id) > tuple_(after_created, after_id),
                        ),
                    )
                )
            ordered = statement.order_by(score.desc(), Node.created_at, Node.id)
        else:
            if after is not None:
                assert len(after) == 2
                statement = statement.where(tuple_(Node.created_at, Node.id) > tuple_(*after))
            ordered = statement.order_by(Node.created_at, Node.id)
        rows = await self.session.execute(ordered.limit(limit))
        return [NodeView(row[0], bool(row[1])) for row in rows]

    async def record_latest_scores(self, epoch: int, scores: Sequence[tuple[str, int]]) -> None:
        """Sets each `(node_id, score_ppm)` as its node's latest score, unless the node already
        holds the score of a later epoch (a rebuild of an older epoch changes nothing)."""
        if not scores:
            return
        table = Node.metadata.tables[Node.__tablename__]
        await self.session.execute(
            update(table)
            .where(
                table.c.id == bindparam("node"),
                or_(table.c.score_epoch.is_(None), table.c.score_epoch <= epoch),
            )
            .values(score_ppm=bindparam("score"), score_epoch=epoch),
            [{"node": node_id, "score": score} for node_id, score in scores],
        )

    # The node's device configs (the table sits low: device_configs.py): revoked with the node.
    async def revoke_live_on_node(self, node_id: str, protocol: str | None = None) -> int:
        """Revokes the node's live configs (of `protocol`: the operator dropped it; or all: the
        node is deleted); how many."""
        statement = update(DeviceConfig).where(
            DeviceConfig.node_id == node_id, DeviceConfig.revoked_at.is_(None)
        )
        if protocol is not None:
            statement = statement.where(DeviceConfig.protocol == protocol)
        reason = "node_deleted" if protocol is None else "protocol_dropped"
        revoked = await self.session.scalars(
            statement.values(revoked_at=func.now(), revoked_reason=reason).returning(
                DeviceConfig.id
            )
        )
        return len(revoked.all())

    async def revoked_serials(
        self, node_id: str, valid_after: datetime
    ) -> list[tuple[str, datetime]]:
        """Serials (hex) and revocation times of the node's revoked OpenVPN certificates that
        are still valid after `valid_after` (expired ones need no CRL entry)."""
        rows = await self.session.execute(
            select(DeviceConfig.cert_serial, DeviceConfig.revoked_at)
            .where(
                DeviceConfig.node_id == node_id,
                DeviceConfig.cert_serial.is_not(None),
                DeviceConfig.revoked_at.is_not(None),
                DeviceConfig.cert_not_after > valid_after,
            )
            .order_by(DeviceConfig.revoked_at, DeviceConfig.cert_serial)
        )
        return [(str(serial), revoked_at) for serial, revoked_at in rows if revoked_at is not None]
