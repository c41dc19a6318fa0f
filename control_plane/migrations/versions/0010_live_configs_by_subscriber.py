"""live_configs_by_subscriber: the device limit counts a subscriber's live configs by an index

Every issuance counts the subscriber's live configs (`revoked_at IS NULL`) under its device lock.
With only `ix_device_configs_subscriber` the planner, whenever the table's statistics are behind
its growth (a fresh database, autovacuum off or not yet run), ANDed that index with a scan of a
whole partial index of live configs: the count read every live config of every node, 11 ms per
issuance at 42,000 configs, growing with the table (bench R9 fell behind after 6 minutes at 134
issuances a second). A partial index of live configs by subscriber answers the count from the
subscriber's own rows, whatever the statistics say.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_device_configs_live_subscriber",
        "device_configs",
        ["subscriber"],
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_device_configs_live_subscriber", table_name="device_configs")
