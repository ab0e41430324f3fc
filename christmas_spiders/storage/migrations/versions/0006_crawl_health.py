"""crawl health: each run's health verdict, its counts per year, the values it kept from vanishing,
and crawl_health rows (without a product) in product_changes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_KINDS = "kind IN ('listed', 'changed', 'delisted', 'relisted')"
_EVENT_KINDS = "kind IN ('listed', 'changed', 'delisted', 'relisted', 'crawl_health')"


def upgrade() -> None:
    op.add_column("crawl_runs", sa.Column("health", sa.String(length=16), nullable=True))
    op.add_column(
        "crawl_runs",
        sa.Column(
            "health_reasons",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_crawl_runs_health"),
        "crawl_runs",
        "health IS NULL OR health IN ('ok', 'suspect')",
    )
    op.alter_column("product_changes", "product_id", nullable=True)
    op.drop_constraint(op.f("ck_product_changes_kind"), "product_changes", type_="check")
    op.create_check_constraint(op.f("ck_product_changes_kind"), "product_changes", _EVENT_KINDS)
    op.create_check_constraint(
        op.f("ck_product_changes_product"),
        "product_changes",
        "product_id IS NOT NULL OR kind = 'crawl_health'",
    )
    op.create_table(
        "crawl_run_counts",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("counter", sa.String(length=48), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["crawl_runs.id"],
            name=op.f("fk_crawl_run_counts_run_id_crawl_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "year", "counter", name=op.f("pk_crawl_run_counts")),
    )
    op.create_table(
        "crawl_run_vanishes",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("kept", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("new", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["crawl_runs.id"],
            name=op.f("fk_crawl_run_vanishes_run_id_crawl_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_crawl_run_vanishes_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "field", "product_id", name=op.f("pk_crawl_run_vanishes")
        ),
    )


def downgrade() -> None:
    op.drop_table("crawl_run_vanishes")
    op.drop_table("crawl_run_counts")
    op.execute("DELETE FROM product_changes WHERE kind = 'crawl_health'")
    op.drop_constraint(op.f("ck_product_changes_product"), "product_changes", type_="check")
    op.drop_constraint(op.f("ck_product_changes_kind"), "product_changes", type_="check")
    op.create_check_constraint(op.f("ck_product_changes_kind"), "product_changes", _KINDS)
    op.alter_column("product_changes", "product_id", nullable=False)
    op.drop_constraint(op.f("ck_crawl_runs_health"), "crawl_runs", type_="check")
    op.drop_column("crawl_runs", "health_reasons")
    op.drop_column("crawl_runs", "health")
