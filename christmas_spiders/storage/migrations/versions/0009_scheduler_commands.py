"""scheduler commands: `python scheduler.py pause|resume|run` queues a command for the running
scheduler instead of writing APScheduler's job store beside it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_commands",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "action IN ('run', 'pause', 'resume')", name=op.f("ck_scheduler_commands_action")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_commands")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_commands")
