"""webhook deliveries carry the trace they link to

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

A delivery's span links to the trace of the job that produced the event. The delivery row
now carries that ``traceparent`` itself (set when the event is written), so the webhook
dispatcher no longer reads the job table. Rows written before this revision get it from their
job.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_delivery", sa.Column("traceparent", sa.String(64), nullable=True))
    op.execute(
        "UPDATE webhook_delivery SET traceparent = "
        "(SELECT job.traceparent FROM job WHERE job.id = webhook_delivery.job_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery") as batch_op:
        batch_op.drop_column("traceparent")
