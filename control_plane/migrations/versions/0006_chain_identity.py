"""chain_identity: the chain and deployment the mirror describes

`scripts/dev` restarted anvil and redeployed but kept the database, and the API listed nodes of
a chain that was gone (issue 14). The control plane now records the chain id, the genesis block
hash and the deployment's addresses, and at start-up refuses a database built from another chain,
or (NODUS_ON_CHAIN_CHANGE=reset) wipes it and rebuilds the mirror from the deployment's start.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("deployment", sa.String(length=66), nullable=False),
        sa.Column("start_block", sa.BigInteger(), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_chain_identity_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_identity")),
    )


def downgrade() -> None:
    op.drop_table("chain_identity")
