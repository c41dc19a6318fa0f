"""peer_changes: which configs each revision touched, so the feed can answer a diff

A node agent that is close behind can ask for the changes since its revision instead of the
whole set (issue 13). Every revision bump now records the configs whose place in the desired set
it may have changed (`peer_changes`), or, for a change it does not itemize (a node registered,
revived, deleted, or a protocol dropped), starts a new history: `nodes.peer_history` gets a new
random id and `nodes.peer_log_from` moves to the new revision, so no diff spans it. The log
keeps the last 1024 revisions of each node (`revisions.HISTORY_REVISIONS`): every 256th bump
drops older rows and moves `peer_log_from` past them (a diff needs `since >= peer_log_from`).
Existing nodes start with an empty log (`peer_log_from` = their revision).

One function, `nodus_bump_peers`, bumps the revision, logs, compacts and sends the NOTIFY, for
both `bump_revision` and the issuance's deferred trigger (whose `revision_bumps` rows now carry
the config's id).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence
from importlib import import_module

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP_PEERS = """
CREATE FUNCTION nodus_bump_peers(node varchar, configs uuid[], reset boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    bumped bigint;
    log_from bigint;
    deleted timestamptz;
BEGIN
    UPDATE nodes SET
        revision = revision + 1,
        peer_history = CASE WHEN reset THEN gen_random_uuid() ELSE peer_history END,
        peer_log_from = CASE
            WHEN reset THEN revision + 1
            WHEN (revision + 1) % 256 = 0
                THEN GREATEST(peer_log_from, revision + 1 - 1024)
            ELSE peer_log_from END
    WHERE id = node
    RETURNING revision, peer_log_from, deleted_at INTO bumped, log_from, deleted;
    IF bumped IS NULL THEN
        RETURN NULL;
    END IF;
    IF deleted IS NOT NULL THEN
        -- A bump of a deleted node (a deletion raced an issue): its live configs go, as the
        -- deletion's own did, and no diff spans it.
        UPDATE device_configs SET revoked_at = now() WHERE node_id = node AND revoked_at IS NULL;
        IF NOT reset THEN
            UPDATE nodes SET peer_history = gen_random_uuid(), peer_log_from = bumped
            WHERE id = node;
            reset := true;
            log_from := bumped;
        END IF;
    END IF;
    IF reset OR bumped % 256 = 0 THEN
        DELETE FROM peer_changes WHERE node_id = node AND revision <= log_from;
    END IF;
    IF NOT reset AND configs IS NOT NULL THEN
        INSERT INTO peer_changes (node_id, revision, config_id)
        SELECT DISTINCT node, bumped, unnest(configs);
    END IF;
    PERFORM pg_notify('nodus_peers', node || ':' || bumped);
    RETURN bumped;
END
$$
"""

BUMP_AT_COMMIT = """
CREATE OR REPLACE FUNCTION nodus_bump_revision_at_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nodus_bump_peers(
        NEW.node_id,
        CASE WHEN NEW.config_id IS NULL THEN NULL ELSE ARRAY[NEW.config_id] END,
        NEW.config_id IS NULL);
    DELETE FROM revision_bumps WHERE id = NEW.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.add_column(
        "nodes",
        sa.Column(
            "peer_history",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
    )
    op.add_column(
        "nodes",
        sa.Column("peer_log_from", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute("UPDATE nodes SET peer_log_from = revision")
    op.create_table(
        "peer_changes",
        sa.Column("node_id", sa.String(length=66), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("config_id", postgresql.UUID(as_uuid=True), nullable=False),
        # Also the diff's index: a node's rows by revision.
        sa.PrimaryKeyConstraint("node_id", "revision", "config_id", name=op.f("pk_peer_changes")),
    )
    op.add_column(
        "revision_bumps", sa.Column("config_id", postgresql.UUID(as_uuid=True), nullable=True)
    )
    op.execute(BUMP_PEERS)
    op.execute(BUMP_AT_COMMIT)


def downgrade() -> None:
    before = import_module("control_plane.migrations.versions.0007_revision_bump_at_commit")
    op.execute(before.BUMP_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute("DROP FUNCTION nodus_bump_peers(varchar, uuid[], boolean)")
    op.drop_column("revision_bumps", "config_id")
    op.drop_table("peer_changes")
    op.drop_column("nodes", "peer_log_from")
    op.drop_column("nodes", "peer_history")
