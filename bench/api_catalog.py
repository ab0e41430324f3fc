"""The data and the requests of the API benchmark (figure 6, bench/api_latency.py).

`generate()` fills a migrated scratch database with a catalog in SQL (`generate_series`, the
history trigger off while loading): products linked to ornaments as the shops' listings are, each
with a year of history ending at its current price and stock. `api_workload()` and
`market_workload()` draw, from that catalog, the request paths each endpoint is driven with
(seeded, so every run asks the same).
"""

from __future__ import annotations

import random

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.storage.database import HISTORY_TRIGGER

VENDOR_IDS = ("hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com")
SERIES = ("Frosty Friends", "Nostalgic Rocking Horse", "Snow Buddies", "Here Comes Santa")
WORDS = ("Frosty", "Rocking", "Snow", "Santa", "Train", "Angel", "Star", "Disney")

# Each product of the generated catalog: one offer of ornament `o` (g / 3) at shop `v` (g % 3),
# the three shops' listings of an ornament sharing its SKU. `h` (0-99, a hash of the ornament)
# picks how the shops offer it, as the linked shops look (docs/ornaments.md): 64 % of the
# ornaments listed at three shops, 28 % at two (one shop delisted it), 8 % at one; mostly boxed,
# 20 % with a no-box offer, 4 % a no-tag or damaged-box one. `regular` is the shop's price
# (the ornament's base price times a shop factor, 0.85-1.24; no box 0.7 of it).
_OFFERS = sa.text(
    """
    CREATE TEMPORARY TABLE bench_offers ON COMMIT DROP AS
    WITH drawn AS (
        SELECT g, g / 3 AS o, g % 3 AS v,
               (g / 3 * 2654435761 % 4294967296) / 42949673 AS h
          FROM generate_series(0::bigint, :products - 1) AS g
    ), classed AS (
        SELECT *,
               CASE WHEN h < 15 AND v = o % 3 THEN 'no_box'
                    WHEN h >= 60 AND h < 65 AND v = (o + 1) % 3 THEN 'no_box'
                    WHEN h >= 96 AND h < 98 AND v = o % 3 THEN 'no_tag'
                    WHEN h >= 98 AND v = o % 3 THEN 'damaged_box'
                    ELSE 'boxed' END AS condition,
               (h >= 60 AND h < 88 AND v = o % 3) OR (h >= 88 AND h < 96 AND v <> o % 3)
                   AS delisted
          FROM drawn
    )
    SELECT *,
           floor((9.95 + (o * 7919) % 5000 / 100.0) * (0.85 + (g * 104729) % 40 / 100.0)
                 * CASE WHEN condition = 'no_box' THEN 0.7 ELSE 1 END) + 0.95 AS regular
      FROM classed
    """
)
_ORNAMENTS = sa.text(
    """
    INSERT INTO ornaments (id, key, year, item_number, name, comparable_name, series,
                           series_number)
    SELECT o + 1, (1973 + o % 53)::text || ':' || 'QX' || lpad(o::text, 6, '0'), 1973 + o % 53,
           'QX' || lpad(o::text, 6, '0'),
           (1973 + o % 53)::text || ' ' || (:words)[1 + o % 8] || ' Keepsake Ornament ' || o,
           lower((:words)[1 + o % 8]) || ' ' || o,
           CASE WHEN o % 5 = 0 THEN (:series)[1 + (o / 5) % 4] END,
           CASE WHEN o % 5 = 0 THEN 1 + (o / 20) % 40 END
      FROM generate_series(0, (:products - 1) / 3) AS o
    """
)
_ORNAMENT_IDS = sa.text(
    "SELECT setval(pg_get_serial_sequence('ornaments', 'id'), (SELECT max(id) FROM ornaments))"
)
_PRODUCTS = sa.text(
    """
    INSERT INTO products (vendor, vendor_product_id, vendor_key, sku, name, price, currency,
                          availability, release_year, brand, link, series, series_number, artist,
                          first_seen_at, last_synced_at, created_at, updated_at,
                          ornament_id, condition, link_method, link_score, link_pending)
    SELECT (:vendors)[1 + v], g::text, g::text,
           'QX' || lpad(o::text, 6, '0'),
           (1973 + o % 53)::text || ' ' || (:words)[1 + o % 8] || ' Keepsake Ornament ' || o,
           CASE WHEN g % 17 = 0 THEN NULL ELSE regular END,
           'USD',
           CASE WHEN (g * 37) % 20 < 14 THEN 'available'
                WHEN (g * 37) % 20 < 19 THEN 'unavailable' ELSE 'preorder' END,
           1973 + o % 53, 'Hallmark', 'https://shop.invalid/p/' || g::text,
           CASE WHEN o % 5 = 0 THEN (:series)[1 + (o / 5) % 4] END,
           CASE WHEN o % 5 = 0 THEN 1 + (o / 20) % 40 END,
           (ARRAY['Ken Crow', 'Lynn Norton', 'Sharon Visker', NULL])[1 + g % 4],
           now() - interval '400 days', now() - (g % 1440) * interval '1 minute',
           now() - interval '400 days', now() - (g % 365) * interval '1 day',
           o + 1, condition, 'item_number', 100, false
      FROM bench_offers ORDER BY g
    """
)
# Each product's history over the last year, consistent with its row: `listed` 375-379 days ago
# (before the 365-day window), then changes spread evenly to ~2 days ago with a jitter per
# product and row. Every 4th row (phase per product) is a stock change, alternating between
# in stock and sold out and ending at its current availability; the others move its price by
# 1-5 steps of $1 per $20 either way (never by nothing), the last one to its current price; a
# delisted product's last row is `delisted` (and its delisted_at). Inserted time-major, as
# crawls write it: one product's rows are spread over the whole table.
_HISTORY = sa.text(
    """
    INSERT INTO product_changes (product_id, kind, field, old_value, new_value, changed_at)
    WITH offers AS (
        SELECT p.id, p.price, p.availability, b.g, b.regular, b.delisted, b.g % 4 AS phase,
               :history - 1 - b.delisted::int AS last,
               greatest(1, floor(b.regular / 20)) AS step,
               CASE WHEN p.availability = 'unavailable' THEN 'available' ELSE 'unavailable' END
                   AS other
          FROM products p JOIN bench_offers b ON b.g = p.vendor_product_id::int
    ), steps AS (
        SELECT o.*, s,
               s > 0 AND s <= o.last AND (s + o.phase) % 4 = 0 AS stock_row,
               s > 0 AND s <= o.last AND (s + o.phase) % 4 <> 0 AS price_row,
               CASE WHEN s - 1 = 0 OR (s - 1 + o.phase) % 4 <> 0 THEN s - 1 ELSE s - 2 END
                   AS previous_price_row,
               (o.last + o.phase) / 4 - (s + o.phase) / 4 AS stock_rows_after,
               now() - interval '375 days' - (o.id % 96) * interval '1 hour'
                 + (s + CASE WHEN s = 0 THEN 0
                             ELSE 0.9 * ((o.id * 7919 + s * 104729) % 1000) / 1000.0 END)
                   * (interval '375 days' / :history) AS changed_at
          FROM offers o CROSS JOIN generate_series(0, :history - 1) AS s
    ), valued AS (
        SELECT *,
               regular + step * (((g * 31 + s * 7) % 10) - 5
                                 + (((g * 31 + s * 7) % 10) >= 5)::int) AS walk,
               regular + step * (((g * 31 + previous_price_row * 7) % 10) - 5
                                 + (((g * 31 + previous_price_row * 7) % 10) >= 5)::int)
                   AS walked_from,
               CASE WHEN stock_rows_after % 2 = 0 THEN availability ELSE other END AS stock,
               CASE WHEN stock_rows_after % 2 = 1 THEN availability ELSE other END AS stocked_from
          FROM steps
    )
    SELECT id,
           CASE WHEN s = 0 THEN 'listed' WHEN stock_row OR price_row THEN 'changed'
                ELSE 'delisted' END,
           CASE WHEN stock_row THEN 'availability' WHEN price_row THEN 'price' END,
           CASE WHEN stock_row THEN stocked_from WHEN price_row THEN walked_from::text END,
           CASE WHEN s = 0 THEN jsonb_build_object('price', walk, 'availability', stock)::text
                WHEN stock_row THEN stock
                WHEN price_row AND (s = last OR (s = last - 1 AND (last + phase) % 4 = 0))
                    THEN price::text
                WHEN price_row THEN walk::text
                ELSE jsonb_build_object('price', price, 'availability', availability)::text
           END,
           changed_at
      FROM valued
     ORDER BY changed_at
    """
)
_DELISTED = sa.text(
    """
    UPDATE products p SET delisted_at = c.changed_at
      FROM product_changes c WHERE c.product_id = p.id AND c.kind = 'delisted'
    """
)


def generate(engine: Engine, products: int, history: int) -> None:
    names = {
        "products": products,
        "words": list(WORDS),
        "series": list(SERIES),
        "vendors": list(VENDOR_IDS),
    }
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE products DISABLE TRIGGER {HISTORY_TRIGGER}"))
        connection.execute(_OFFERS, names)
        connection.execute(_ORNAMENTS, names)
        connection.execute(_ORNAMENT_IDS)
        connection.execute(_PRODUCTS, names)
        connection.execute(_HISTORY, {"history": history})
        connection.execute(_DELISTED)
        connection.execute(sa.text(f"ALTER TABLE products ENABLE TRIGGER {HISTORY_TRIGGER}"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE ornaments, products, product_changes"))


def api_workload(engine: Engine, products: int) -> dict[str, list[str]]:
    rng = random.Random(42)
    with engine.connect() as connection:
        low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM products")).one()
    years = range(1973, 2026)
    lists = []
    for _ in range(200):
        vendor, year = rng.choice(VENDOR_IDS), rng.choice(years)
        sort = rng.choice(("id", "-price", "price", "name", "-updated_at", "release_year"))
        lists.append(
            rng.choice(
                (
                    f"/v1/products?sort={sort}&limit=50",
                    f"/v1/products?vendor={vendor}&release_year={year}&sort={sort}",
                    f"/v1/products?availability=available&price_max=30&sort={sort}",
                    f"/v1/products?q={rng.choice(WORDS)}&limit=50",
                    f"/v1/products?series={SERIES[rng.randrange(4)].replace(' ', '+')}",
                    f"/v1/products?release_year_min={year}&release_year_max={year + 5}&sort={sort}",
                )
            )
        )
    return {
        "/healthz": ["/healthz"],
        "product list (mixed filters and sorts, 50 a page)": lists,
        "product history": [f"/v1/products/{rng.randint(low, high)}/history" for _ in range(500)],
        "SKU view (3 shops, each with its history)": [
            f"/v1/skus/QX{rng.randrange(products // 3):06d}" for _ in range(500)
        ],
    }


# Ornaments with boxed offers in stock at two shops or more today: the gaps a user opens.
_GAPPED = sa.text(
    """
    SELECT ornament_id FROM products
     WHERE delisted_at IS NULL AND condition = 'boxed' AND price IS NOT NULL
       AND availability IN ('available', 'preorder')
     GROUP BY ornament_id HAVING count(DISTINCT vendor) >= 2 ORDER BY ornament_id
    """
)
GAP_SORTS = ("-gap", "gap", "-gap_percent", "gap_percent", "year", "-year", "name", "id")
RARE_SORTS = ("in_stock_365", "-in_stock_365", "in_stock_90", "shops", "-shops", "id")


def market_workload(engine: Engine) -> dict[str, list[str]]:
    """The market view's endpoints (issue #21), each with varied parameters, first page (the
    default 50 rows) of each list."""
    rng = random.Random(21)
    with engine.connect() as connection:
        gapped = connection.execute(_GAPPED).scalars().all() or [1]
    years = range(1973, 2026)
    others = []
    for _ in range(100):
        shop, vendor = rng.sample(VENDOR_IDS, 2)
        series = SERIES[rng.randrange(4)].replace(" ", "+")
        others.append(
            rng.choice(
                (
                    f"/v1/market/gaps?shop={shop}&sort={rng.choice(GAP_SORTS)}",
                    f"/v1/market/gaps?vendor={shop}&vendor={vendor}",
                    f"/v1/market/gaps?min_gap={rng.choice((5, 10, 20))}",
                    f"/v1/market/gaps?min_gap_percent={rng.choice((10, 25, 50))}",
                    f"/v1/market/gaps?series={series}",
                    "/v1/market/gaps?condition=no_box",
                )
            )
        )
    return {
        "market gaps (sorts)": [f"/v1/market/gaps?sort={sort}" for sort in GAP_SORTS],
        "market gaps, year= (sorts)": [
            f"/v1/market/gaps?year={rng.choice(years)}&sort={rng.choice(GAP_SORTS)}"
            for _ in range(200)
        ],
        "market gaps, other filters (shop, vendor, min_gap, series, no box)": others,
        "market gaps CSV (every gap)": ["/v1/market/gaps.csv"],
        "market gaps CSV, year=": [f"/v1/market/gaps.csv?year={year}" for year in years],
        "market gap history (90 days)": [
            f"/v1/market/gaps/{rng.choice(gapped)}/history" for _ in range(500)
        ],
        "market rare (sorts)": [f"/v1/market/rare?sort={sort}" for sort in RARE_SORTS]
        + [f"/v1/market/rare?year={rng.choice(years)}" for _ in range(6)],
        "market year index (one year, 90 days)": [
            f"/v1/market/years/{rng.choice(years)}" for _ in range(200)
        ],
        "market years (the default: the newest 10 compared, 90 days)": ["/v1/market/years"],
        "market years (every year, from=, 90 days)": [f"/v1/market/years?from={min(years)}"],
    }
