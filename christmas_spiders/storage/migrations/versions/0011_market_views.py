"""market views (issue #21): price gaps and rarity precomputed in materialized views, and
market_refreshes, when each was last refreshed (the answers' `as_of`)

The views are built here from the data already stored; christmas_spiders.storage.market
refreshes them after crawls, relinks and daily. Definitions: storage/sql/0011_market_views.sql.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:00:00.000000
"""

from importlib import resources

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_VIEWS = ("market_offers", "market_gaps", "market_rarity")  # in dependency order


def upgrade() -> None:
    op.create_table(
        "market_refreshes",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_market_refreshes")),
    )
    views = resources.files("christmas_spiders.storage") / "sql" / "0011_market_views.sql"
    op.execute(views.read_text(encoding="utf-8"))
    op.execute(
        sa.text(
            "INSERT INTO market_refreshes (name, refreshed_at) "
            "SELECT unnest(CAST(:views AS text[])), now()"
        ).bindparams(views=list(_VIEWS))
    )


def downgrade() -> None:
    for view in reversed(_VIEWS):
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
    op.drop_table("market_refreshes")
