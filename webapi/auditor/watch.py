"""What the catalog says about a page of changes, for alert rules that watch an ornament or a
SKU (issue #15, `alerts.Catalog`): the ornament of each product, and the ornaments each watched
SKU names in any form (`ornament_queries.sku_ornament_ids`, as /v1/skus reads them)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from christmas_spiders.config import AlertRule
from christmas_spiders.storage.history import Change
from christmas_spiders.storage.schema import products
from webapi.auditor.alerts import NO_CATALOG, Catalog, watching
from webapi.ornament_queries import sku_ornament_ids


def needed(rules: Sequence[AlertRule]) -> bool:
    return any(watching(rule) for rule in rules)


def read_catalog(
    connection: Connection, rules: Sequence[AlertRule], changes: Sequence[Change]
) -> Catalog:
    """The catalog facts `rules` need for `changes` (none when no rule watches)."""
    if not needed(rules):
        return NO_CATALOG
    product_ids = sorted({change.product_id for change in changes if change.product_id})
    ornament_of = {}
    if product_ids:
        query = sa.select(products.c.id, products.c.ornament_id).where(
            products.c.id.in_(product_ids), products.c.ornament_id.is_not(None)
        )
        ornament_of = {row.id: row.ornament_id for row in connection.execute(query)}
    skus = sorted({rule.sku for rule in rules if rule.sku is not None})
    return Catalog(
        ornament_of,
        {sku: frozenset(connection.execute(sku_ornament_ids(sku)).scalars()) for sku in skus},
    )
