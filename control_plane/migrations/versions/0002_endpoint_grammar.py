"""nodes out of service: re-check stored endpoints and countries against the strict grammar

Earlier releases accepted endpoints with newlines (a trailing newline, or inside an IPv6 zone
id), which reached subscribers' wg-quick and OpenVPN files as extra lines. This adds the
"out of service" columns and takes every live node whose stored endpoint or country fails the
grammar out of service: hidden from the node list and GET, no config issued or rendered for it,
until its operator PATCHes valid values.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from control_plane.tunnel.grammar import stored_node_problem

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("nodes", sa.Column("suspended_reason", sa.Text(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, endpoint, country FROM nodes WHERE deleted_at IS NULL")
    ).all()
    for node_id, endpoint, country in rows:
        problem = stored_node_problem(endpoint, country)
        if problem is not None:
            connection.execute(
                sa.text(
                    "UPDATE nodes SET suspended_at = now(), suspended_reason = :reason "
                    "WHERE id = :id"
                ),
                {"id": node_id, "reason": f"out of service: {problem}; PATCH valid values"},
            )


def downgrade() -> None:
    op.drop_column("nodes", "suspended_reason")
    op.drop_column("nodes", "suspended_at")
