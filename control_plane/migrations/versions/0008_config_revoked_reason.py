"""config_revoked_reason: why a device config was revoked

When an operator turned a protocol off (or deleted the node), the node's configs of it were
revoked and the device fetching its config got a bare 404 `no such config`, as if it had mistyped
its id. The reason is now recorded (`by_owner`, `protocol_dropped`, `node_deleted`) and a device
whose config its operator took away gets 410 `config_revoked` with what to do next. Rows revoked
before keep NULL (the API judges them from the node's current state).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("device_configs", sa.Column("revoked_reason", sa.String(16), nullable=True))
    op.create_check_constraint(
        op.f("ck_device_configs_revoked_reason"),
        "device_configs",
        "revoked_reason IN ('by_owner', 'protocol_dropped', 'node_deleted')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_device_configs_revoked_reason"), "device_configs", type_="check")
    op.drop_column("device_configs", "revoked_reason")
