"""products.page_read_at (issue #16): when the product's own page was last read

A quick sync (`-a mode=quick`) marks a product it found unchanged on a listing as synced
(`last_synced_at`) without reading its page; `page_read_at` keeps when the page itself was last
read, so the quick sync re-reads the oldest pages first (docs/spiders.md, "Quick sync").
Existing rows start from their `last_synced_at`: until now every sync read the page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column(
            "page_read_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.execute("UPDATE products SET page_read_at = last_synced_at")


def downgrade() -> None:
    op.drop_column("products", "page_read_at")
