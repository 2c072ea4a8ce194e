"""jobs keep the submitting request's id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 17:10:00.000000

Every attempt of a job logs the ``X-Request-ID`` of the request that submitted it. The first
message of a task carries it; a message the dispatcher sends again (after a deferral, a retry
or a lost message) carries no context, so the job row now keeps it. Jobs written before this
revision have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job") as batch_op:
        batch_op.drop_column("request_id")
