"""The chain mirror belongs to one chain and one deployment. At start-up the control plane
compares what the database was built from (`chain_identity`) with the chain it is configured
for: the chain id, the genesis block's hash (a restarted dev chain has a new one, even with the
same id and addresses) and the deployment's addresses. On a mismatch it refuses to start
(`NODUS_ON_CHAIN_CHANGE=refuse`, the default), or (`reset`, what `scripts/dev` sets) empties every
table that describes the old chain and lets the indexer rebuild the mirror from the
deployment's start block.

The check is repeated while the process runs (`identity_still_holds`, before every indexer
run, with block 0's hash re-read every RECHECK_SECONDS): a control plane that started while the
chain was unreachable, or whose dev chain was restarted under it, records, resets or stops
mirroring then, instead of serving the gone chain's rows.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.chain.client import ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.db import unit_of_work
from control_plane.errors import ChainUnavailable
from control_plane.indexer.models import ChainIdentity

if TYPE_CHECKING:
    from control_plane.jobs import Services

log = logging.getLogger("nodus.indexer.identity")

RECHECK_SECONDS: Final = 30.0

# Tables that do not describe a chain: the schema's version, the identity itself, the job
# schedule, and what belongs to wallets or the admin whatever the chain (sign-in, API keys,
# the prober registry).
KEPT_ON_RESET = frozenset(
    {
        "alembic_version",
        "chain_identity",
        "job_runs",
        "auth_nonces",
        "agent_challenges",
        "api_keys",
        "probers",
    }
)


class ChainChanged(RuntimeError):
    """The database describes another chain or deployment than the one configured."""


@dataclass(frozen=True, slots=True)
class Identity:
    chain_id: int
    genesis_hash: str
    deployment: str
    start_block: int

    def describe(self) -> str:
        return (
            f"chain id {self.chain_id}, genesis {self.genesis_hash[:18]}..., "
            f"deployment {self.deployment[:16]}... (start block {self.start_block})"
        )


def deployment_fingerprint(deployment: Deployment) -> str:
    """One hash over the chain id and every contract address."""
    parts = [str(deployment.chain_id)] + [
        f"{name}={address.lower()}" for name, address in sorted(deployment.addresses.items())
    ]
    return "0x" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


async def current_identity(chain: ChainReader, deployment: Deployment) -> Identity:
    return Identity(
        chain_id=deployment.chain_id,
        genesis_hash=(await chain.block_hash(0)).lower(),
        deployment=deployment_fingerprint(deployment),
        start_block=deployment.start_block,
    )


async def _reset_chain_tables(session: AsyncSession) -> list[str]:
    names = (
        await session.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        )
    ).all()
    wiped = sorted(str(name) for name in names if name not in KEPT_ON_RESET)
    if wiped:
        tables = ", ".join(f'"{name}"' for name in wiped)
        await session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return wiped


async def ensure_chain_identity(
    sessions: async_sessionmaker[AsyncSession],
    chain: ChainReader,
    deployment: Deployment,
    on_change: str,
) -> None:
    """Records the identity on first start; on a mismatch refuses (raises ChainChanged) or
    resets, per `on_change`. An unreachable chain cannot be checked: logged, and start-up goes
    on (the indexer cannot write anything new until the chain answers either)."""
    try:
        current = await current_identity(chain, deployment)
    except ChainUnavailable:
        log.warning("chain unreachable at start-up: the mirror's chain identity is not checked")
        return
    async with unit_of_work(sessions) as session:
        # One replica at a time decides (two starting together must not both reset).
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('nodus.chain_identity'))")
        )
        stored_row = await session.scalar(select(ChainIdentity).where(ChainIdentity.id == 1))
        stored = (
            None
            if stored_row is None
            else Identity(
                stored_row.chain_id,
                stored_row.genesis_hash,
                stored_row.deployment,
                stored_row.start_block,
            )
        )
        if stored is not None and stored != current:
            if on_change != "reset":
                raise ChainChanged(
                    f"the database describes another chain ({stored.describe()}) than the one "
                    f"configured ({current.describe()}): point NODUS_DATABASE_URL at this "
                    "chain's database, or set NODUS_ON_CHAIN_CHANGE=reset to wipe the chain "
                    "data and rebuild the mirror from the deployment's start block"
                )
            wiped = await _reset_chain_tables(session)
            log.warning(
                "chain changed (%s -> %s): emptied %d tables; the indexer rebuilds the mirror "
                "from block %d",
                stored.describe(),
                current.describe(),
                len(wiped),
                current.start_block,
            )
        if stored != current:
            values = {
                "chain_id": current.chain_id,
                "genesis_hash": current.genesis_hash,
                "deployment": current.deployment,
                "start_block": current.start_block,
            }
            await session.execute(
                insert(ChainIdentity)
                .values(id=1, **values)
                .on_conflict_do_update(index_elements=[ChainIdentity.id], set_=values)
            )


async def identity_still_holds(services: Services, session: AsyncSession) -> bool:
    """Whether the indexer may go on: the recorded identity is still the chain's (re-checked
    with block 0's hash at most every RECHECK_SECONDS; the database only when that hash is new
    to this process). On a change it records, resets or refuses as at start-up; a refusal stops
    the indexer (logged once) until the operator acts. An unreachable chain answers True: the
    indexer's own reads fail and it resumes later."""
    deployment = services.chain.deployment
    cache = services.chain_reads
    try:
        genesis = await cache.genesis_hash(services.chain, RECHECK_SECONDS)
    except ChainUnavailable:
        return True
    if cache.identity_verdict is not None and cache.identity_verdict[0] == genesis:
        return cache.identity_verdict[1]
    stored = await session.scalar(select(ChainIdentity).where(ChainIdentity.id == 1))
    holds = True
    if (
        stored is None
        or stored.genesis_hash != genesis
        or stored.deployment != deployment_fingerprint(deployment)
    ):
        try:
            await ensure_chain_identity(
                services.sessions, services.chain, deployment, services.settings.on_chain_change
            )
        except ChainChanged as exc:
            log.error("chain sync stopped: %s", exc)
            holds = False
        except ChainUnavailable:
            return True  # not checked: asked again next run
    cache.identity_verdict = (genesis, holds)
    return holds
