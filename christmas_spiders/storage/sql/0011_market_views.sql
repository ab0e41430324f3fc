-- The market views (issue #21, docs/market.md "Method"): price gaps and rarity precomputed,
-- refreshed CONCURRENTLY (each has a unique index for that) by
-- christmas_spiders.storage.market.refresh_market when a crawl run that changed anything ends,
-- after a relink, and daily from the scheduler. In stock: listed, priced, and available or on
-- pre-order (christmas_spiders.domain.IN_STOCK).

-- Each shop's cheapest offer in stock of each ornament in each condition (ties: the lower id).
CREATE MATERIALIZED VIEW market_offers AS
SELECT DISTINCT ON (ornament_id, condition, vendor)
       ornament_id, condition, vendor, id AS product_id, price, link
  FROM products
 WHERE delisted_at IS NULL AND availability IN ('available', 'preorder') AND price IS NOT NULL
   AND ornament_id IS NOT NULL AND condition IS NOT NULL
 ORDER BY ornament_id, condition, vendor, price, id;

CREATE UNIQUE INDEX ix_market_offers_key ON market_offers (ornament_id, condition, vendor);

-- Every gap: an ornament in a condition with offers in stock at two or more shops; the cheapest
-- and the dearest shop's offer (ties: the cheapest end takes the lower shop id, the dearest
-- the higher, so the ends are two shops), the gap in money and in percent of the
-- cheapest price (one decimal). Once per set of shops that may count (`shop_set`, ids sorted:
-- the API's `vendor` filter; every shop without it): 2^n - n - 1 sets of n shops, 4 for our 3.
-- The ornament's own columns ride along for the sorts and filters.
CREATE MATERIALIZED VIEW market_gaps AS
WITH numbered AS (
    SELECT id::text AS id, (row_number() OVER (ORDER BY id) - 1)::integer AS bit FROM vendors
), shop_sets AS (  -- each as a bit mask of `numbered` (an integer sorts faster than an array)
    SELECT m AS mask, array_agg(n.id ORDER BY n.id) AS shop_set
      FROM generate_series(1, (1 << (SELECT count(*) FROM numbered)::integer) - 1) AS m
      JOIN numbered n ON m & (1 << n.bit) <> 0
     GROUP BY m HAVING count(*) >= 2
), ranked AS (
    SELECT s.mask, o.ornament_id, o.condition, o.vendor, o.product_id, o.price, o.link,
           row_number() OVER (PARTITION BY o.ornament_id, o.condition, s.mask
                              ORDER BY o.price, o.vendor) AS from_cheapest,
           row_number() OVER (PARTITION BY o.ornament_id, o.condition, s.mask
                              ORDER BY o.price DESC, o.vendor DESC) AS from_dearest,
           count(*) OVER (PARTITION BY o.ornament_id, o.condition, s.mask) AS shops
      FROM market_offers o
      JOIN numbered n ON n.id = o.vendor
      JOIN shop_sets s ON s.mask & (1 << n.bit) <> 0
)
SELECT s.shop_set, c.ornament_id, c.condition,
       o.year, o.name, o.series, o.series_number, o.item_number, c.shops,
       c.product_id AS cheapest_id, c.vendor AS cheapest_vendor, c.link AS cheapest_link,
       c.price AS cheapest_price,
       d.product_id AS dearest_id, d.vendor AS dearest_vendor, d.link AS dearest_link,
       d.price AS dearest_price,
       d.price - c.price AS gap,
       round(100 * (d.price - c.price) / nullif(c.price, 0), 1) AS gap_percent
  FROM ranked c
  JOIN ranked d ON d.mask = c.mask AND d.ornament_id = c.ornament_id
               AND d.condition = c.condition AND d.from_dearest = 1
  JOIN shop_sets s ON s.mask = c.mask
  JOIN ornaments o ON o.id = c.ornament_id
 WHERE c.from_cheapest = 1 AND c.shops >= 2;

-- One per sort the API offers (keyset pages walk them); the unique one also serves sort=id.
CREATE UNIQUE INDEX ix_market_gaps_key ON market_gaps (condition, shop_set, ornament_id);
CREATE INDEX ix_market_gaps_gap ON market_gaps (condition, shop_set, gap, ornament_id);
CREATE INDEX ix_market_gaps_gap_percent
    ON market_gaps (condition, shop_set, gap_percent, ornament_id);
CREATE INDEX ix_market_gaps_year ON market_gaps (condition, shop_set, year, ornament_id);
CREATE INDEX ix_market_gaps_name ON market_gaps (condition, shop_set, name, ornament_id);
-- The `series` filter (any case); `year` has its sort's index.
CREATE INDEX ix_market_gaps_series ON market_gaps (condition, shop_set, lower(series));

-- Rarity of every ornament with a linked offer, as of the refresh (now() is the refresh
-- transaction's start): the shops listing it, the share of the last 90 and 365 days it was in
-- stock at any shop (the union of its offers' in-stock spans, read from product_changes), and
-- the price trend of its offers priced now and 90 days ago.
CREATE MATERIALIZED VIEW market_rarity AS
WITH stock_events AS (
    SELECT p.ornament_id, c.product_id, c.changed_at, c.id,
           CASE WHEN c.kind = 'delisted' THEN false
                WHEN c.kind IN ('listed', 'relisted')
                    THEN coalesce((c.new_value::jsonb ->> 'availability')
                                  IN ('available', 'preorder'), false)
                ELSE coalesce(c.new_value IN ('available', 'preorder'), false)
           END AS in_stock
      FROM product_changes c JOIN products p ON p.id = c.product_id
     WHERE p.ornament_id IS NOT NULL
       AND (c.kind IN ('listed', 'relisted', 'delisted')
            OR (c.kind = 'changed' AND c.field = 'availability'))
       AND c.changed_at < now()
), spans AS (
    SELECT ornament_id, in_stock, changed_at AS starts,
           coalesce(lead(changed_at) OVER (PARTITION BY product_id ORDER BY changed_at, id),
                    now()) AS ends
      FROM stock_events
), clipped AS (
    SELECT ornament_id, greatest(starts, now() - interval '365 days') AS starts,
           least(ends, now()) AS ends
      FROM spans
     WHERE in_stock AND ends > now() - interval '365 days'
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
           sum(extract(epoch FROM greatest(ends - greatest(starts, now() - interval '90 days'),
                                           interval '0'))) AS short_seconds
      FROM islands GROUP BY ornament_id
), prices_then AS (  -- each offer's last price at the start of the short window
    SELECT DISTINCT ON (c.product_id) c.product_id,
           CASE WHEN c.kind = 'changed' THEN c.new_value
                ELSE c.new_value::jsonb ->> 'price' END::numeric AS price
      FROM product_changes c JOIN products p ON p.id = c.product_id
     WHERE p.ornament_id IS NOT NULL AND c.changed_at <= now() - interval '90 days'
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
SELECT o.id AS ornament_id, o.year, o.name, o.series, o.series_number, o.item_number,
       s.shops::integer AS shops,
       round(100 * coalesce(h.short_seconds, 0) / (90 * 86400), 1) AS in_stock_percent_90,
       round(100 * coalesce(h.long_seconds, 0) / (365 * 86400), 1) AS in_stock_percent_365,
       t.trend_percent, coalesce(t.trend_offers, 0)::integer AS trend_offers
  FROM ornaments o
  JOIN shops s ON s.ornament_id = o.id
  LEFT JOIN shares h ON h.ornament_id = o.id
  LEFT JOIN trend t ON t.ornament_id = o.id;

CREATE UNIQUE INDEX ix_market_rarity_key ON market_rarity (ornament_id);
CREATE INDEX ix_market_rarity_in_stock_365 ON market_rarity (in_stock_percent_365, ornament_id);
CREATE INDEX ix_market_rarity_in_stock_90 ON market_rarity (in_stock_percent_90, ornament_id);
CREATE INDEX ix_market_rarity_shops ON market_rarity (shops, ornament_id);
CREATE INDEX ix_market_rarity_year ON market_rarity (year, ornament_id);
CREATE INDEX ix_market_rarity_series ON market_rarity (lower(series));
