"""revision_bump_at_commit: a node's revision is bumped when the issuing transaction commits

Config issuance bumped its node's revision with an UPDATE of the node's row mid-transaction and
held that row lock until its COMMIT arrived, so every issuance onto one node queued behind the
previous one's client round trip (issue 13). An issuance now inserts a row here instead; a
deferred constraint trigger bumps the revision, sends the NOTIFY and deletes the row inside the
COMMIT, so the row lock lasts only for the commit itself. A bump that finds the node deleted (a
deletion raced the issue) revokes the node's live configs, as the deletion itself does.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP_FUNCTION = """
CREATE FUNCTION nodus_bump_revision_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bumped bigint;
    deleted timestamptz;
BEGIN
    UPDATE nodes SET revision = revision + 1 WHERE id = NEW.node_id
    RETURNING revision, deleted_at INTO bumped, deleted;
    IF bumped IS NOT NULL THEN
        IF deleted IS NOT NULL THEN
            UPDATE device_configs SET revoked_at = now()
            WHERE node_id = NEW.node_id AND revoked_at IS NULL;
        END IF;
        PERFORM pg_notify('nodus_peers', NEW.node_id || ':' || bumped);
    END IF;
    DELETE FROM revision_bumps WHERE id = NEW.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "revision_bumps",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("node_id", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision_bumps")),
    )
    op.execute(BUMP_FUNCTION)
    op.execute(
        "CREATE CONSTRAINT TRIGGER bump_revision_at_commit AFTER INSERT ON revision_bumps "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION nodus_bump_revision_at_commit()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER bump_revision_at_commit ON revision_bumps")
    op.execute("DROP FUNCTION nodus_bump_revision_at_commit()")
    op.drop_table("revision_bumps")
