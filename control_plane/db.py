"""Database engine, sessions and the unit of work.

The request owns the transaction: `session` (a FastAPI dependency) opens one per request and
commits it when the handler returns, or rolls it back on any error. Code below the routers
(services, repositories) never commits. Jobs open their own unit of work with `unit_of_work`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVarTuple

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, Row, Select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic migrations are deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """Every wait on the database is bounded (settings: NODUS_DATABASE_*_TIMEOUT_SECONDS)."""

    connect_seconds: float = 3.0
    pool_seconds: float = 10.0
    statement_seconds: float = 5.0


def make_engine(database_url: str, timeouts: DatabaseTimeouts | None = None) -> AsyncEngine:
    bounds = timeouts or DatabaseTimeouts()
    # hide_parameters: an unexpected error's log line must not carry bound values (key hashes,
    # encrypted keys, addresses).
    # Every connection is kept (no overflow): one opened and closed per burst costs more than
    # the requests it serves. No pre-ping: it is a round trip per request; a connection that
    # died (a restarted server) fails its request with a 503, and SQLAlchemy then drops every
    # pooled connection older than the failure, so the next requests reconnect.
    return create_async_engine(
        database_url,
        pool_size=30,
        max_overflow=0,
        pool_pre_ping=False,
        pool_timeout=bounds.pool_seconds,
        hide_parameters=True,
        connect_args={
            "timeout": bounds.connect_seconds,
            # A frozen server never answers, so its own statement_timeout cannot fire: the
            # client gives up one second after it should have.
            "command_timeout": bounds.statement_seconds + 1.0,
            "server_settings": {"statement_timeout": str(int(bounds.statement_seconds * 1000))},
        },
    )


# Rows per round trip of a read that streams (an epoch's samples, peer reports and nodes). Each
# fetch is a statement of its own to PostgreSQL's statement_timeout and to the client's command
# timeout, so a read of millions of rows is bounded per fetch, not as a whole: read in one
# statement, an epoch's samples at 30,000 nodes outlasted the default 5 s and the epoch failed.
ROWS_PER_FETCH = 20_000


_Columns = TypeVarTuple("_Columns")


async def streamed(
    session: AsyncSession,
    statement: Select[*_Columns],
    rows_per_fetch: int = ROWS_PER_FETCH,
) -> AsyncIterator[Sequence[Row[*_Columns]]]:
    """The rows of `statement`, `rows_per_fetch` at a time, from a server-side cursor in the
    session's transaction."""
    result = await session.stream(statement.execution_options(yield_per=rows_per_fetch))
    async for rows in result.partitions():
        yield rows


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    async with sessions() as session, session.begin():
        yield session


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with unit_of_work(sessions) as session:
        yield session


# scope="function": the commit runs before the response is sent, so a client never gets an
# answer for a write it cannot yet read back, and a failed commit is an error, not a lost 200.
Session = Annotated[AsyncSession, Depends(_request_session, scope="function")]
