"""audit worker delivery state: subscriber cursors and the delivery log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:21:03.311135
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_subscribers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_change_id", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_subscribers")),
    )
    op.create_table(
        "audit_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("subscriber", sa.String(length=64), nullable=False),
        sa.Column("first_change_id", sa.BigInteger(), nullable=False),
        sa.Column("last_change_id", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column(
            "attempted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('delivered', 'failed')", name=op.f("ck_audit_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber"],
            ["audit_subscribers.name"],
            name=op.f("fk_audit_deliveries_subscriber_audit_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_deliveries")),
    )
    op.create_index(
        op.f("ix_audit_deliveries_attempted_at"), "audit_deliveries", ["attempted_at"], unique=False
    )
    op.create_index(
        op.f("ix_audit_deliveries_subscriber_id"),
        "audit_deliveries",
        ["subscriber", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_deliveries_subscriber_id"), table_name="audit_deliveries")
    op.drop_index(op.f("ix_audit_deliveries_attempted_at"), table_name="audit_deliveries")
    op.drop_table("audit_deliveries")
    op.drop_table("audit_subscribers")
