"""read-only API: api_keys, and indexes for the product list, search and the feed by time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 01:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(
        "ix_api_keys_active_name",
        "api_keys",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_index(op.f("ix_products_name_id"), "products", ["name", "id"])
    op.create_index(op.f("ix_products_price_id"), "products", ["price", "id"])
    op.create_index(op.f("ix_products_release_year_id"), "products", ["release_year", "id"])
    op.create_index(op.f("ix_products_updated_at_id"), "products", ["updated_at", "id"])
    op.create_index(op.f("ix_products_delisted_at"), "products", ["delisted_at"])
    op.create_index("ix_products_lower_series", "products", [sa.text("lower(series)")])
    op.create_index("ix_products_lower_artist", "products", [sa.text("lower(artist)")])
    op.create_index(
        "ix_products_name_search",
        "products",
        [sa.text("to_tsvector('simple'::regconfig, name)")],
        postgresql_using="gin",
    )
    op.create_index(op.f("ix_product_changes_changed_at"), "product_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_product_changes_changed_at"), table_name="product_changes")
    for name in (
        "ix_products_name_search",
        "ix_products_lower_artist",
        "ix_products_lower_series",
        "ix_products_delisted_at",
        "ix_products_updated_at_id",
        "ix_products_release_year_id",
        "ix_products_price_id",
        "ix_products_name_id",
    ):
        op.drop_index(name, table_name="products")
    op.drop_index("ix_api_keys_active_name", table_name="api_keys")
    op.drop_table("api_keys")
