"""nodes: the latest scored epoch's score, for the public node list

`GET /v1/nodes` returned `"score": null` for every node and `min_score` filtered out every node
(issue 11). The nodes domain sits below rewards, so the list cannot join the rewards tables; the
scorer writes each node's latest score onto its row instead (`rewards.repository
.save_epoch_scores`). This adds the two columns and fills them from the scores recorded so far.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("score_ppm", sa.Integer(), nullable=True))
    op.add_column("nodes", sa.Column("score_epoch", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_nodes_score_range"),
        "nodes",
        "score_ppm IS NULL OR score_ppm BETWEEN 0 AND 1000000",
    )
    op.execute(
        """
        UPDATE nodes SET score_ppm = latest.score_ppm, score_epoch = latest.epoch
        FROM (
            SELECT DISTINCT ON (node_id) node_id, epoch, score_ppm
            FROM node_scores
            ORDER BY node_id, epoch DESC, chain_id
        ) AS latest
        WHERE nodes.id = latest.node_id
        """
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_nodes_score_range"), "nodes", type_="check")
    op.drop_column("nodes", "score_epoch")
    op.drop_column("nodes", "score_ppm")
