"""A price gap's history (docs/market.md): one ornament in one condition, day by day, from the
change history (not recomputed from today's prices). The SQL, every value bound; no Flask.

Each of the ornament's offers in the condition has a state (in stock or not, its price) that
its `product_changes` rows set: `listed`/`relisted` snapshots, `changed` rows of availability
and price, `delisted`. At the end of each day (now, for today) each shop's cheapest offer in
stock stands for the shop, as in today's gaps; the day has a gap when two or more shops do.
`open_since` is the first day of the run of gap days that reaches the last day (NULL: no gap
on the last day).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row

from christmas_spiders.domain import IN_STOCK

# Each offer's whole state (in stock, price) after each of its rows, for the offers of a CTE
# named `offers` (id, vendor) that the query defines first: the shared part of the market's
# history queries.
OFFER_STATES = """
events AS (
    SELECT c.product_id, c.changed_at, c.id,
           CASE WHEN c.kind = 'delisted' THEN false
                WHEN c.kind IN ('listed', 'relisted')
                    THEN coalesce((c.new_value::jsonb ->> 'availability') = ANY(:in_stock), false)
                WHEN c.field = 'availability' THEN coalesce(c.new_value = ANY(:in_stock), false)
           END AS in_stock,
           c.kind IN ('listed', 'relisted') OR c.field = 'price' AS sets_price,
           CASE WHEN c.kind IN ('listed', 'relisted') THEN c.new_value::jsonb ->> 'price'
                WHEN c.field = 'price' THEN c.new_value END::numeric AS price
      FROM product_changes c JOIN offers o ON o.id = c.product_id
     WHERE c.kind IN ('listed', 'relisted', 'delisted')
        OR (c.kind = 'changed' AND c.field IN ('availability', 'price'))
), runs AS (  -- the rows since each offer's last stock row and since its last price row
    SELECT *,
           count(in_stock) OVER w AS stock_run,
           count(*) FILTER (WHERE sets_price) OVER w AS price_run
      FROM events WINDOW w AS (PARTITION BY product_id ORDER BY changed_at, id)
), states AS (  -- each offer's whole state from each of its rows until its next one
    SELECT product_id, changed_at, id,
           coalesce(lead(changed_at) OVER (PARTITION BY product_id ORDER BY changed_at, id),
                    'infinity') AS until,
           bool_or(in_stock) OVER (PARTITION BY product_id, stock_run) AS in_stock,
           max(price) FILTER (WHERE sets_price) OVER (PARTITION BY product_id, price_run) AS price
      FROM runs
)"""

_HISTORY = (
    """
WITH offers AS (
    SELECT id, vendor FROM products WHERE ornament_id = :ornament AND condition = :condition
), """
    + OFFER_STATES
    + """, days AS (
    SELECT day::date AS day, least(day + interval '1 day', :now) AS ends
      FROM generate_series(date_trunc('day', :now - (:days - 1) * interval '1 day'),
                           date_trunc('day', :now), interval '1 day') AS day
), shop_prices AS (
    SELECT d.day, o.vendor, min(s.price) AS price
      FROM days d CROSS JOIN offers o
      JOIN states s ON s.product_id = o.id AND s.changed_at < d.ends AND s.until >= d.ends
     WHERE s.in_stock AND s.price IS NOT NULL
     GROUP BY d.day, o.vendor
), daily AS (
    SELECT d.day, count(p.vendor) AS shops, min(p.price) AS cheapest, max(p.price) AS dearest
      FROM days d LEFT JOIN shop_prices p ON p.day = d.day
     GROUP BY d.day
), marked AS (
    SELECT *, count(*) FILTER (WHERE shops < 2) OVER (ORDER BY day) AS closed_before FROM daily
)
SELECT day, shops, cheapest, dearest,
       CASE WHEN shops >= 2 THEN dearest - cheapest END AS gap,
       CASE WHEN shops >= 2
            THEN min(day) FILTER (WHERE shops >= 2) OVER (PARTITION BY closed_before)
       END AS open_since
  FROM marked ORDER BY day
"""
)


def gap_history(
    connection: Connection, ornament_id: int, condition: str, days: int, now: datetime
) -> list[Row]:
    """The gap of an ornament in `condition` on each of the last `days` days up to `now`:
    (day, shops, cheapest, dearest, gap, open_since), oldest first."""
    query = sa.text(_HISTORY).bindparams(
        sa.bindparam("in_stock", list(IN_STOCK), type_=ARRAY(sa.Text)),
        ornament=ornament_id,
        condition=condition,
        days=days,
        now=now,
    )
    return connection.execute(query).all()
