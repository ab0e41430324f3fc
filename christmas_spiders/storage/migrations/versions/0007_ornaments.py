"""ornaments (issue #15): the ornaments table, each product's ornament, condition and link, and
`relinked` rows in product_changes

Products stored before this revision are linked when they are next stored with a changed
name, SKU or year, or all at once by `python -m christmas_spiders.catalog relink`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_KINDS_BEFORE = "kind IN ('listed', 'changed', 'delisted', 'relisted', 'crawl_health')"
_KINDS = "kind IN ('listed', 'changed', 'delisted', 'relisted', 'relinked', 'crawl_health')"
_FLAGS = (
    "flags <@ ARRAY['miniature', 'light_and_sound', 'magic', 'signed', 'limited', 'club']::text[]"
)


def upgrade() -> None:
    op.create_table(
        "ornaments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("item_number", sa.String(length=32), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("comparable_name", sa.Text(), nullable=False),
        sa.Column("series", sa.Text(), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column(
            "series_numbers",
            postgresql.ARRAY(sa.Integer()),
            server_default=sa.text("'{}'::int[]"),
            nullable=False,
        ),
        sa.Column(
            "flags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "aliases",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
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
        sa.CheckConstraint(_FLAGS, name=op.f("ck_ornaments_flags")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ornaments")),
        sa.UniqueConstraint("key", name=op.f("uq_ornaments_key")),
    )
    op.create_index(
        "ix_ornaments_year_item_number",
        "ornaments",
        ["year", "item_number"],
        unique=True,
        postgresql_where=sa.text("item_number IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_ornaments_year_comparable_name"), "ornaments", ["year", "comparable_name"]
    )
    op.create_index(op.f("ix_ornaments_item_number"), "ornaments", ["item_number"])
    op.create_index(
        "ix_ornaments_lower_series",
        "ornaments",
        [sa.text("lower(series)"), "series_number"],
    )

    op.add_column("products", sa.Column("ornament_id", sa.BigInteger(), nullable=True))
    op.add_column("products", sa.Column("condition", sa.String(length=16), nullable=True))
    op.add_column("products", sa.Column("link_method", sa.String(length=16), nullable=True))
    op.add_column("products", sa.Column("link_score", sa.Float(), nullable=True))
    op.add_column(
        "products",
        sa.Column("link_form", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_foreign_key(
        op.f("fk_products_ornament_id_ornaments"),
        "products",
        "ornaments",
        ["ornament_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        op.f("ck_products_condition"),
        "products",
        "condition IS NULL OR condition IN ('boxed', 'no_box', 'no_tag', 'damaged_box')",
    )
    op.create_check_constraint(
        op.f("ck_products_link_method"),
        "products",
        "link_method IS NULL OR link_method IN ('item_number', 'name')",
    )
    op.create_index(op.f("ix_products_ornament_id"), "products", ["ornament_id"])

    op.drop_constraint(op.f("ck_product_changes_kind"), "product_changes", type_="check")
    op.create_check_constraint(op.f("ck_product_changes_kind"), "product_changes", _KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM product_changes WHERE kind = 'relinked'")
    op.drop_constraint(op.f("ck_product_changes_kind"), "product_changes", type_="check")
    op.create_check_constraint(op.f("ck_product_changes_kind"), "product_changes", _KINDS_BEFORE)
    op.drop_index(op.f("ix_products_ornament_id"), table_name="products")
    op.drop_constraint(op.f("ck_products_link_method"), "products", type_="check")
    op.drop_constraint(op.f("ck_products_condition"), "products", type_="check")
    op.drop_constraint(op.f("fk_products_ornament_id_ornaments"), "products", type_="foreignkey")
    for column in ("link_form", "link_score", "link_method", "condition", "ornament_id"):
        op.drop_column("products", column)
    op.drop_table("ornaments")
