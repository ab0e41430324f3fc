"""The year index (docs/market.md): a chain-linked price index of the ornaments of one year,
day by day, from the change history. The SQL, every value bound; no Flask.

An ornament's price on a day is its cheapest offer in stock in the condition at the end of that
day (each offer's state carried forward from its rows, as a gap's history does). Each day's step
compares only the ornaments priced at the end of that day and of the day before (matched
ornaments): the geometric mean of their price ratios (a Jevons index). The index is 100 on the
first day and each day's value is the previous one times its step, so ornaments appearing,
disappearing or selling out never move it; a day without a matched ornament repeats the
previous value. Each point says how many ornaments were priced and how many were matched.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row

from christmas_spiders.domain import IN_STOCK
from webapi.market.gap_history import OFFER_STATES

_INDEX = (
    """
WITH offers AS (
    SELECT p.id, p.vendor, p.ornament_id
      FROM products p JOIN ornaments o ON o.id = p.ornament_id
     WHERE o.year = :year AND p.condition = :condition
), """
    + OFFER_STATES
    + """, days AS (
    SELECT day::date AS day, least(day + interval '1 day', :now) AS ends
      FROM generate_series(date_trunc('day', :now - (:days - 1) * interval '1 day'),
                           date_trunc('day', :now), interval '1 day') AS day
), ornament_days AS (
    SELECT d.day, o.ornament_id, min(s.price) AS price
      FROM days d CROSS JOIN offers o
      JOIN states s ON s.product_id = o.id AND s.changed_at < d.ends AND s.until >= d.ends
     WHERE s.in_stock AND s.price > 0
     GROUP BY d.day, o.ornament_id
), steps AS (
    SELECT t.day, count(*) AS matched, exp(avg(ln(t.price / y.price))) AS ratio
      FROM ornament_days t
      JOIN ornament_days y ON y.ornament_id = t.ornament_id AND y.day = t.day - 1
     GROUP BY t.day
), priced AS (
    SELECT day, count(*) AS ornaments FROM ornament_days GROUP BY day
)
SELECT d.day, coalesce(p.ornaments, 0) AS ornaments, coalesce(s.matched, 0) AS matched,
       round(100 * exp(sum(ln(coalesce(s.ratio, 1))) OVER (ORDER BY d.day
                                                        ROWS UNBOUNDED PRECEDING)), 2) AS index
  FROM days d
  LEFT JOIN steps s ON s.day = d.day
  LEFT JOIN priced p ON p.day = d.day
 ORDER BY d.day
"""
)


def year_index(
    connection: Connection, year: int, condition: str, days: int, now: datetime
) -> list[Row]:
    """The index of `year`'s ornaments in `condition` on each of the last `days` days up to
    `now`: (day, ornaments, matched, index), oldest first; 100 on the first day."""
    query = sa.text(_INDEX).bindparams(
        sa.bindparam("in_stock", list(IN_STOCK), type_=ARRAY(sa.Text)),
        year=year,
        condition=condition,
        days=days,
        now=now,
    )
    return connection.execute(query).all()
