"""Rarity (docs/market.md): per ornament, how many shops list it, the share of the last 90 and
365 days it was in stock at any shop, and its price trend. The SQL, every value bound; no Flask.

**In stock over time** comes from `product_changes`: an offer's `listed`/`relisted` snapshot
and its `changed` availability rows set its state (in stock: available or pre-order), a
`delisted` row ends it; each state lasts until the offer's next such row, the last one until
now. An ornament is in stock while any of its offers is: the union of their in-stock spans
(gaps and islands), so two shops at once count once. Offers belong to the ornament they are
linked to today.

**Price trend**: how its listed offers' prices moved since 90 days ago, matched offer by offer
(only offers priced then and now count): their sum now over their sum then, minus one, in
percent; `trend_offers` says how many offers stand behind it.

Computed per request with window functions (no materialized view: nothing to refresh after a
crawl; docs/market.md says what it costs).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from christmas_spiders.domain import IN_STOCK

SHORT_DAYS, LONG_DAYS = 90, 365

_RARITY = """
WITH stock_events AS (
    SELECT p.ornament_id, c.product_id, c.changed_at, c.id,
           CASE WHEN c.kind = 'delisted' THEN false
                WHEN c.kind IN ('listed', 'relisted')
                    THEN coalesce((c.new_value::jsonb ->> 'availability') = ANY(:in_stock), false)
                ELSE coalesce(c.new_value = ANY(:in_stock), false)
           END AS in_stock
      FROM product_changes c JOIN products p ON p.id = c.product_id
     WHERE p.ornament_id IS NOT NULL
       AND (c.kind IN ('listed', 'relisted', 'delisted')
            OR (c.kind = 'changed' AND c.field = 'availability'))
       AND c.changed_at < :now
), spans AS (
    SELECT ornament_id, in_stock, changed_at AS starts,
           coalesce(lead(changed_at) OVER (PARTITION BY product_id ORDER BY changed_at, id),
                    :now) AS ends
      FROM stock_events
), clipped AS (
    SELECT ornament_id, greatest(starts, :long_since) AS starts, least(ends, :now) AS ends
      FROM spans
     WHERE in_stock AND ends > :long_since
), marked AS (  -- a span opens an island unless an earlier one reaches its start
    SELECT ornament_id, starts, ends,
           CASE WHEN max(ends) OVER (PARTITION BY ornament_id ORDER BY starts, ends
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) >= starts
                THEN 0 ELSE 1 END AS opens
      FROM clipped
), numbered AS (
    SELECT ornament_id, starts, ends,
           sum(opens) OVER (PARTITION BY ornament_id ORDER BY starts, ends
                            ROWS UNBOUNDED PRECEDING) AS island
      FROM marked
), islands AS (
    SELECT ornament_id, min(starts) AS starts, max(ends) AS ends
      FROM numbered GROUP BY ornament_id, island
), shares AS (
    SELECT ornament_id,
           sum(extract(epoch FROM ends - starts)) AS long_seconds,
           sum(extract(epoch FROM greatest(ends - greatest(starts, :short_since),
                                           interval '0'))) AS short_seconds
      FROM islands GROUP BY ornament_id
), prices_then AS (  -- each offer's last price at the start of the short window
    SELECT DISTINCT ON (c.product_id) c.product_id,
           CASE WHEN c.kind = 'changed' THEN c.new_value
                ELSE c.new_value::jsonb ->> 'price' END::numeric AS price
      FROM product_changes c JOIN products p ON p.id = c.product_id
     WHERE p.ornament_id IS NOT NULL AND c.changed_at <= :short_since
       AND (c.kind IN ('listed', 'relisted') OR (c.kind = 'changed' AND c.field = 'price'))
     ORDER BY c.product_id, c.changed_at DESC, c.id DESC
), trend AS (
    SELECT p.ornament_id, count(*) AS trend_offers,
           round(100 * (sum(p.price) / nullif(sum(t.price), 0) - 1), 1) AS trend_percent
      FROM products p JOIN prices_then t ON t.product_id = p.id
     WHERE p.delisted_at IS NULL AND p.price IS NOT NULL AND t.price IS NOT NULL
     GROUP BY p.ornament_id
), shops AS (
    SELECT ornament_id, count(DISTINCT vendor) FILTER (WHERE delisted_at IS NULL) AS shops
      FROM products WHERE ornament_id IS NOT NULL GROUP BY ornament_id
)
SELECT o.id, o.year, o.name, o.series, o.series_number, o.item_number, s.shops,
       round(100 * coalesce(h.short_seconds, 0) / :short_seconds, 1) AS in_stock_percent_90,
       round(100 * coalesce(h.long_seconds, 0) / :long_seconds, 1) AS in_stock_percent_365,
       t.trend_percent, coalesce(t.trend_offers, 0) AS trend_offers
  FROM ornaments o
  JOIN shops s ON s.ornament_id = o.id
  LEFT JOIN shares h ON h.ornament_id = o.id
  LEFT JOIN trend t ON t.ornament_id = o.id
"""

COLUMNS = {
    "id": sa.BigInteger,
    "year": sa.Integer,
    "name": sa.Text,
    "series": sa.Text,
    "series_number": sa.Integer,
    "item_number": sa.Text,
    "shops": sa.Integer,
    "in_stock_percent_90": sa.Numeric,
    "in_stock_percent_365": sa.Numeric,
    "trend_percent": sa.Numeric,
    "trend_offers": sa.Integer,
}


def rarity(now: datetime) -> sa.Subquery:
    """Every ornament with a linked offer, its rarity figures as of `now` (one row each)."""
    short, long = timedelta(days=SHORT_DAYS), timedelta(days=LONG_DAYS)
    query = (
        sa.text(_RARITY)
        .bindparams(
            sa.bindparam("in_stock", list(IN_STOCK), type_=ARRAY(sa.Text)),
            now=now,
            short_since=now - short,
            long_since=now - long,
            short_seconds=short.total_seconds(),
            long_seconds=long.total_seconds(),
        )
        .columns(*(sa.column(name, kind) for name, kind in COLUMNS.items()))
    )
    return query.subquery("rarity")
