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
from christmas_spiders.storage.market_index import OFFER_STATES

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
