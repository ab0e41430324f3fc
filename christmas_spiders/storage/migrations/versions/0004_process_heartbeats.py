"""process heartbeats: liveness of the scheduler, audit workers, crawler workers and crawls

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process_heartbeats",
        sa.Column("process", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Numeric(precision=10, scale=3), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "beat_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "process IN ('scheduler', 'auditor', 'crawler', 'crawl')",
            name=op.f("ck_process_heartbeats_process"),
        ),
        sa.PrimaryKeyConstraint("process", "instance", name=op.f("pk_process_heartbeats")),
    )
    op.create_index(op.f("ix_process_heartbeats_beat_at"), "process_heartbeats", ["beat_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_process_heartbeats_beat_at"), table_name="process_heartbeats")
    op.drop_table("process_heartbeats")
