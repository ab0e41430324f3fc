"""The year index, precomputed (issue #21, docs/market.md "Year index"): each day's step of
each release year's chain-linked price index, kept in `market_year_steps` so that a request
only chains at most 365 rows a year.

The definition is the change history's: an offer's state (in stock, price) is carried forward
from its `product_changes` rows (OFFER_STATES); an ornament's price on a day is its cheapest
offer in stock in the condition at the end of that day (now, for today); a day's step compares
the ornaments priced at the end of that day and of the day before (matched): `log_step` is the
mean of the logarithms of their price ratios (a Jevons index), `ornaments` and `matched` count
them. Offers count for the ornament and condition they have today.

Kept exact by `refresh_year_index`, run after every crawl run, after relinking and daily
(storage.market's steps):

* `market_offer_states` holds every product's state at the end of `base_day` (the last day
  finished over an hour ago; see MARGIN) and the link it had at the last refresh;
* each refresh recomputes the steps of the days after `base_day` up to now from those states
  and the rows written since (an index range of `product_changes`), then moves `base_day`
  forward;
* a product whose ornament or condition changed (relinking), or a new one with older history,
  changes the past of its old and new series (year, condition): their last 365 days are rebuilt
  from the whole history (`_REBUILD`, the same definition), as is everything on the first
  refresh and with `rebuild=True`.

Only the last KEEP_DAYS days are kept: the API's window is at most that long.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from christmas_spiders.domain import IN_STOCK

logger = logging.getLogger(__name__)

# Days kept (the API's longest window).
KEEP_DAYS = 365
# A day's end states become the base once the day has been over this long: a change is
# written with its transaction's start time, so one committed later than this after it (a
# store transaction open that long) would be missed until the next rebuild.
MARGIN = timedelta(hours=1)

# What each product_changes row of an offer says about its state: in stock (NULL: the row does
# not say), whether it sets the price, and the price it sets. Rows of `c` (product_changes).
EVENT_COLUMNS = """c.product_id, c.changed_at, c.id,
           CASE WHEN c.kind = 'delisted' THEN false
                WHEN c.kind IN ('listed', 'relisted')
                    THEN coalesce((c.new_value::jsonb ->> 'availability') = ANY(:in_stock), false)
                WHEN c.field = 'availability' THEN coalesce(c.new_value = ANY(:in_stock), false)
           END AS in_stock,
           c.kind IN ('listed', 'relisted') OR c.field = 'price' AS sets_price,
           CASE WHEN c.kind IN ('listed', 'relisted') THEN c.new_value::jsonb ->> 'price'
                WHEN c.field = 'price' THEN c.new_value END::numeric AS price"""
EVENT_ROWS = """(c.kind IN ('listed', 'relisted', 'delisted')
        OR (c.kind = 'changed' AND c.field IN ('availability', 'price')))
       AND c.changed_at < :now"""

# Each offer's whole state (in stock, price) after each of its rows (written before :now),
# until its next row, for the offers of a CTE named `offers` (id, …) that the query defines
# first: the shared part of the market's history queries.
OFFER_STATES = f"""
events AS (
    SELECT {EVENT_COLUMNS}
      FROM product_changes c JOIN offers o ON o.id = c.product_id
     WHERE {EVENT_ROWS}
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

# The linked offers with their year, as products link them today.
_OFFERS = """
    SELECT p.id, p.ornament_id, p.condition, o.year
      FROM products p JOIN ornaments o ON o.id = p.ornament_id
     WHERE p.condition IS NOT NULL"""

# What the rows of each product written in [:since, :until) change of its state: the last stock
# row's answer, and the last price row's price (`sets_price`: there is one).
_FOLD = f"""
    SELECT product_id,
           (array_agg(in_stock ORDER BY changed_at DESC, id DESC)
                FILTER (WHERE in_stock IS NOT NULL))[1] AS in_stock,
           coalesce(bool_or(sets_price), false) AS sets_price,
           (array_agg(price ORDER BY changed_at DESC, id DESC) FILTER (WHERE sets_price))[1]
               AS price
      FROM (SELECT {EVENT_COLUMNS} FROM product_changes c
             WHERE {EVENT_ROWS} AND c.changed_at >= :since AND c.changed_at < :until) AS e
     GROUP BY product_id"""

# One day's step of every series from the base states and the rows since the base: the states
# at the end of the day before (:day_starts) and of the day (:until, now for today).
_DAY_STEP = f"""
WITH events AS (
    SELECT {EVENT_COLUMNS} FROM product_changes c
     WHERE {EVENT_ROWS} AND c.changed_at >= :since AND c.changed_at < :until
), folds AS (
    SELECT product_id,
           (array_agg(in_stock ORDER BY changed_at DESC, id DESC)
                FILTER (WHERE in_stock IS NOT NULL AND changed_at < :day_starts))[1]
               AS prev_in_stock,
           coalesce(bool_or(sets_price) FILTER (WHERE changed_at < :day_starts), false)
               AS prev_sets_price,
           (array_agg(price ORDER BY changed_at DESC, id DESC)
                FILTER (WHERE sets_price AND changed_at < :day_starts))[1] AS prev_price,
           (array_agg(in_stock ORDER BY changed_at DESC, id DESC)
                FILTER (WHERE in_stock IS NOT NULL))[1] AS in_stock,
           coalesce(bool_or(sets_price), false) AS sets_price,
           (array_agg(price ORDER BY changed_at DESC, id DESC) FILTER (WHERE sets_price))[1]
               AS price
      FROM events GROUP BY product_id
), offers AS ({_OFFERS}
), states AS (
    SELECT o.ornament_id, o.condition, o.year,
           coalesce(f.prev_in_stock, b.in_stock) AS prev_in_stock,
           CASE WHEN f.prev_sets_price THEN f.prev_price ELSE b.price END AS prev_price,
           coalesce(f.in_stock, b.in_stock) AS in_stock,
           CASE WHEN f.sets_price THEN f.price ELSE b.price END AS price
      FROM offers o
      LEFT JOIN market_offer_states b ON b.product_id = o.id
      LEFT JOIN folds f ON f.product_id = o.id
), closes AS (
    SELECT year, condition, ornament_id,
           min(prev_price) FILTER (WHERE prev_in_stock AND prev_price > 0) AS prev,
           min(price) FILTER (WHERE in_stock AND price > 0) AS price
      FROM states GROUP BY year, condition, ornament_id
)
INSERT INTO market_year_steps (condition, year, day, ornaments, matched, log_step)
SELECT condition, year, :day, count(price), count(price) FILTER (WHERE prev IS NOT NULL),
       avg(ln(price / prev))
  FROM closes GROUP BY condition, year HAVING count(price) > 0
"""

# The steps of the days [:first, :today] of some series (all, or those of :years/:conditions)
# rebuilt from the whole history, without a row per ornament and day:
# * spans: each in-stock priced state of an offer covers the ends of the days from the one it
#   starts on to the one before its next row's (to today for the last one);
# * pieces: an ornament's spans cut at every span's first and after-last day (its bounds,
#   numbered) give intervals on which its price (the cheapest span's) is constant: runs;
# * a day's step: ornaments priced (runs started and not ended), matched (less the runs
#   starting that day that continue none of the same ornament ending the day before), and the
#   mean log of the price ratios of the runs that continue one (0 on a day without events).
_REBUILD = f"""
WITH offers AS ({_OFFERS} {{series}}
), {OFFER_STATES}, spans AS (
    SELECT o.year, o.condition, o.ornament_id, s.price,
           greatest((s.changed_at AT TIME ZONE 'UTC')::date, CAST(:first AS date) - 1) AS first,
           CASE WHEN s.until = 'infinity' THEN CAST(:today AS date)
                ELSE (s.until AT TIME ZONE 'UTC')::date - 1 END AS last
      FROM states s JOIN offers o ON o.id = s.product_id
     WHERE s.in_stock AND s.price > 0
), cut AS (
    SELECT * FROM spans WHERE first <= last
), bounds AS (
    SELECT ornament_id, day, row_number() OVER (PARTITION BY ornament_id ORDER BY day) AS k
      FROM (SELECT ornament_id, first AS day FROM cut
            UNION SELECT ornament_id, last + 1 FROM cut) AS b
), pieces AS (
    SELECT c.year, c.condition, c.ornament_id, piece.k, min(c.price) AS price
      FROM cut c
      JOIN bounds f ON f.ornament_id = c.ornament_id AND f.day = c.first
      JOIN bounds e ON e.ornament_id = c.ornament_id AND e.day = c.last + 1,
           generate_series(f.k, e.k - 1) AS piece (k)
     GROUP BY c.year, c.condition, c.ornament_id, piece.k
), price_runs AS (
    SELECT p.year, p.condition, p.price, b.day AS first, n.day AS ended,
           lag(n.day) OVER w = b.day AS continues, lag(p.price) OVER w AS before
      FROM pieces p
      JOIN bounds b ON b.ornament_id = p.ornament_id AND b.k = p.k
      JOIN bounds n ON n.ornament_id = p.ornament_id AND n.k = p.k + 1
    WINDOW w AS (PARTITION BY p.ornament_id ORDER BY p.k)
), moves AS (
    SELECT year, condition, first AS day, 1 AS priced,
           CASE WHEN continues THEN 0 ELSE 1 END AS fresh,
           CASE WHEN continues THEN ln(price / before) ELSE 0 END AS log
      FROM price_runs
    UNION ALL
    SELECT year, condition, ended, -1, 0, 0 FROM price_runs
), daily AS (
    SELECT year, condition, day, sum(priced) AS priced, sum(fresh) AS fresh, sum(log) AS log
      FROM moves GROUP BY year, condition, day
), counted AS (  -- every day of each series from the day before the first
    SELECT c.year, c.condition, d.day::date AS day,
           sum(coalesce(e.priced, 0)) OVER w AS ornaments,
           coalesce(e.fresh, 0) AS fresh, coalesce(e.log, 0) AS log
      FROM (SELECT DISTINCT year, condition FROM daily) AS c
     CROSS JOIN generate_series(CAST(:first AS date) - 1, CAST(:today AS date),
                                interval '1 day') AS d (day)
      LEFT JOIN daily e ON e.year = c.year AND e.condition = c.condition AND e.day = d.day
    WINDOW w AS (PARTITION BY c.year, c.condition ORDER BY d.day)
)
INSERT INTO market_year_steps (condition, year, day, ornaments, matched, log_step)
SELECT condition, year, day, ornaments, ornaments - fresh,
       CASE WHEN ornaments > fresh THEN log / (ornaments - fresh) END
  FROM counted WHERE day >= :first AND ornaments > 0
"""
_SOME_SERIES = (
    "AND (o.year, p.condition) IN (SELECT * FROM unnest(CAST(:years AS int[]), "
    "CAST(:conditions AS text[])))"
)

# Products whose link changed since the last refresh (relinked, unlinked) and products new
# since then with rows before the base day's end: the series (year, condition) whose past they
# change, before and after. The stored links are brought up to date.
_CHANGED_LINKS = """
WITH current AS (
    SELECT p.id, p.ornament_id, o.year, p.condition,
           s.product_id IS NOT NULL AS known, s.year AS old_year, s.condition AS old_condition,
           (s.ornament_id, s.condition) IS DISTINCT FROM (p.ornament_id, p.condition) AS moved
      FROM products p
      LEFT JOIN ornaments o ON o.id = p.ornament_id
      LEFT JOIN market_offer_states s ON s.product_id = p.id
), changed AS (
    SELECT * FROM current c
     WHERE (c.known AND c.moved)
        OR (NOT c.known AND EXISTS (SELECT FROM product_changes h
                                     WHERE h.product_id = c.id AND h.changed_at < :base_ends))
), stored AS (
    INSERT INTO market_offer_states (product_id, ornament_id, year, condition)
    SELECT id, ornament_id, year, condition FROM current WHERE NOT known OR moved
    ON CONFLICT (product_id) DO UPDATE
       SET ornament_id = excluded.ornament_id, year = excluded.year,
           condition = excluded.condition
)
SELECT old_year AS year, old_condition AS condition FROM changed
 WHERE old_year IS NOT NULL AND old_condition IS NOT NULL
UNION
SELECT year, condition FROM changed WHERE year IS NOT NULL AND condition IS NOT NULL
"""

# Products new since the last refresh with rows before the base day's end (written late, or
# by hand): their state at the base day's end is built from scratch.
_NEW_WITH_PAST = """
SELECT p.id FROM products p
 WHERE NOT EXISTS (SELECT FROM market_offer_states s WHERE s.product_id = p.id)
   AND EXISTS (SELECT FROM product_changes h
                WHERE h.product_id = p.id AND h.changed_at < :base_ends)
"""

# Every product's state at the end of the base day and its link, from the whole history.
_BASE_STATES = f"""
INSERT INTO market_offer_states (product_id, ornament_id, year, condition, in_stock, price)
SELECT p.id, p.ornament_id, o.year, p.condition, f.in_stock, CASE WHEN f.sets_price THEN f.price END
  FROM products p
  LEFT JOIN ornaments o ON o.id = p.ornament_id
  LEFT JOIN ({_FOLD}) AS f ON f.product_id = p.id
 {{products}}
ON CONFLICT (product_id) DO UPDATE
   SET ornament_id = excluded.ornament_id, year = excluded.year,
       condition = excluded.condition, in_stock = excluded.in_stock, price = excluded.price
"""

# The base moved forward: the rows of (old base end, new base end] applied to the states.
_ADVANCE = f"""
UPDATE market_offer_states s
   SET in_stock = coalesce(f.in_stock, s.in_stock),
       price = CASE WHEN f.sets_price THEN f.price ELSE s.price END
  FROM ({_FOLD}) AS f
 WHERE f.product_id = s.product_id
"""


def _text(statement: str, **values: object) -> sa.TextClause:
    """`statement` with `values` and the in-stock availabilities bound."""
    return sa.text(statement).bindparams(
        sa.bindparam("in_stock", list(IN_STOCK), type_=ARRAY(sa.Text)), **values
    )


def _day_end(day: date) -> datetime:
    """The end of `day` (UTC): the next day's start."""
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def _base_day(now: datetime) -> date:
    return (now - MARGIN).astimezone(UTC).date() - timedelta(days=1)


def refresh_year_index(
    connection: Connection, now: datetime | None = None, rebuild: bool = False
) -> None:
    """Bring `market_year_steps` up to `now` (default: the database's clock) in `connection`'s
    transaction (the caller commits; storage.market holds the lock against a concurrent
    refresh): the days since the base day from the rows written since, relinked series from
    their whole history, everything when never built or `rebuild`."""
    if now is None:
        now = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    # JIT compiling took 0.8 s of a 1.2 s statement here (bench data): off for the refresh
    # (transaction-local: a failed refresh's rollback restores it too).
    jit = connection.execute(sa.select(sa.func.current_setting("jit"))).scalar_one()
    connection.execute(sa.select(sa.func.set_config("jit", "off", True)))
    _refresh(connection, now, rebuild)
    connection.execute(sa.select(sa.func.set_config("jit", jit, True)))


def _refresh(connection: Connection, now: datetime, rebuild: bool) -> None:
    today = now.astimezone(UTC).date()
    meta = connection.execute(
        sa.text("SELECT base_day FROM market_year_index FOR UPDATE")
    ).scalar_one_or_none()
    if rebuild or meta is None or (today - meta).days > KEEP_DAYS:
        _rebuild_all(connection, now)
        return
    base = meta
    base_ends = _day_end(base)
    fresh = connection.execute(sa.text(_NEW_WITH_PAST), {"base_ends": base_ends}).scalars().all()
    series = connection.execute(sa.text(_CHANGED_LINKS), {"base_ends": base_ends}).all()
    if fresh:
        _store_base(connection, base, now, fresh)
    day = base + timedelta(days=1)
    while day <= today:
        connection.execute(sa.text("DELETE FROM market_year_steps WHERE day = :day"), {"day": day})
        connection.execute(
            _text(
                _DAY_STEP,
                day=day,
                since=base_ends,
                day_starts=_day_end(day - timedelta(days=1)),
                until=min(_day_end(day), now),
                now=now,
            )
        )
        day += timedelta(days=1)
    if series:
        _rebuild_steps(connection, now, [tuple(row) for row in series])
    new_base = _base_day(now)
    if new_base > base:
        connection.execute(_text(_ADVANCE, since=base_ends, until=_day_end(new_base), now=now))
    _finish(connection, now, max(base, new_base))
    logger.info(
        "year index refreshed to %s: %d day(s), %d series rebuilt",
        now.isoformat(timespec="seconds"),
        (today - base).days,
        len(series),
    )


def _rebuild_all(connection: Connection, now: datetime) -> None:
    base = _base_day(now)
    connection.execute(sa.text("TRUNCATE market_offer_states"))
    _store_base(connection, base, now, None)
    _rebuild_steps(connection, now, None)
    _finish(connection, now, base)
    connection.execute(sa.text("ANALYZE market_year_steps, market_offer_states"))
    logger.info("year index rebuilt from the history to %s", now.isoformat(timespec="seconds"))


def _store_base(
    connection: Connection, base: date, now: datetime, product_ids: list[int] | None
) -> None:
    """The state at the base day's end of every product (or of `product_ids`), from scratch."""
    where = "" if product_ids is None else "WHERE p.id = ANY(:ids)"
    values: dict[str, object] = {"since": datetime.min.replace(tzinfo=UTC)}
    if product_ids is not None:
        values["ids"] = product_ids
    connection.execute(
        _text(_BASE_STATES.format(products=where), until=_day_end(base), now=now, **values)
    )


def _rebuild_steps(
    connection: Connection, now: datetime, series: Iterable[tuple[int, str]] | None
) -> None:
    """The steps of the last KEEP_DAYS days of `series` (None: every series), from the whole
    history."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=KEEP_DAYS - 1)
    if series is None:
        connection.execute(sa.text("TRUNCATE market_year_steps"))
        connection.execute(_text(_REBUILD.format(series=""), first=first, today=today, now=now))
        return
    years, conditions = (list(column) for column in zip(*series, strict=True))
    pairs = {"years": years, "conditions": conditions}
    connection.execute(
        sa.text(
            "DELETE FROM market_year_steps WHERE (year, condition) IN "
            "(SELECT * FROM unnest(CAST(:years AS int[]), CAST(:conditions AS text[])))"
        ),
        pairs,
    )
    connection.execute(
        _text(_REBUILD.format(series=_SOME_SERIES), first=first, today=today, now=now, **pairs)
    )


def _finish(connection: Connection, now: datetime, base: date) -> None:
    connection.execute(
        sa.text("DELETE FROM market_year_steps WHERE day < :oldest"),
        {"oldest": now.astimezone(UTC).date() - timedelta(days=KEEP_DAYS - 1)},
    )
    connection.execute(
        sa.text(
            "INSERT INTO market_year_index (singleton, base_day, as_of) VALUES (true, :base, :now)"
            " ON CONFLICT (singleton) DO UPDATE"
            " SET base_day = excluded.base_day, as_of = excluded.as_of"
        ),
        {"base": base, "now": now},
    )
