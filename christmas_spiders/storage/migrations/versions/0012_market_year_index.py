"""the year index precomputed (issue #21): market_year_steps (each day's step of each year's
index per condition), market_offer_states (every product's state at the end of the base day,
and its link) and market_year_index (the base day, as_of)

Empty here: the first refresh (storage.market, after a crawl run, a relink, daily, or
`python -m christmas_spiders.storage refresh-market`) builds them from the history.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "market_year_steps",
        sa.Column("condition", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ornaments", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("log_step", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint("condition", "year", "day", name=op.f("pk_market_year_steps")),
    )
    op.create_table(
        "market_offer_states",
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("ornament_id", sa.BigInteger(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("condition", sa.String(length=16), nullable=True),
        sa.Column("in_stock", sa.Boolean(), nullable=True),
        sa.Column("price", sa.Numeric(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_market_offer_states_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_market_offer_states")),
    )
    op.create_table(
        "market_year_index",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("base_day", sa.Date(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("singleton", name=op.f("ck_market_year_index_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_market_year_index")),
    )


def downgrade() -> None:
    op.drop_table("market_year_index")
    op.drop_table("market_offer_states")
    op.drop_table("market_year_steps")
