"""listing forms apart from products (issue #15): products.link_form becomes the table
listing_forms, and products.link_pending says which products to link (every sync rewrites
each product row, so it stays narrow)

Products linked before are linked again when next stored, or by
`python -m christmas_spiders.catalog relink`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:30:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "listing_forms",
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("form", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_listing_forms_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_listing_forms")),
    )
    op.add_column(
        "products",
        sa.Column("link_pending", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.drop_column("products", "link_form")


def downgrade() -> None:
    op.add_column(
        "products",
        sa.Column("link_form", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.drop_column("products", "link_pending")
    op.drop_table("listing_forms")
