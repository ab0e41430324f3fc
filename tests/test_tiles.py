"""Listing tiles (christmas_spiders.parsers.tiles) and the quick sync's rules
(christmas_spiders.quick.rules), pure: markup from the contract's skeletons (vendor-sites.md
§1.3, §2.3, §3.3) in, tiles and decisions out. The shops' own pages are read end to end in
tests/test_quick_sync.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from parsel import Selector

from christmas_spiders.config.schedule import DAY, HOUR, JobKind, Schedule, runs_per_day
from christmas_spiders.parsers import tiles
from christmas_spiders.parsers.tiles import Tile
from christmas_spiders.quick import rules

HOOH_URL = "https://www.hookedonhallmark.com/2019-Hallmark-Ornaments-View-All_c_1100.html"
OS_URL = "https://www.ornament-shop.com/1998-hallmark-ornaments-g1-y98.html"
HO_URL = "https://www.hallmarkornaments.com/1975_c_305.html?viewall=1"


def hooh_item(catalog_id: int, price: str, status: str, action: str = "Add To Cart") -> str:
    link = f"https://www.hookedonhallmark.com/Ornament_p_{catalog_id}.html"
    return f"""
    <div class="product-item" data-catalogid="{catalog_id}">
     <div class="img"><a href="{link}"><img src="x.jpg"></a></div>
     <div class="product-content">
      <div class="name"><a href="{link}">Ornament {catalog_id}</a></div>
      {price}
      <div class="status"><span class="availability">{status}</span></div>
      <div class="action"><a href="{link}" class="btn">{action}</a></div>
     </div>
    </div>"""


def hooh_page(*items: str, featured: str = "") -> Selector:
    return Selector(
        text=f"""<div id="category">
        <section id="featureBlock" class="category-products">{featured}</section>
        <section class="category-products"><div class="product-items">{"".join(items)}</div>
        </section></div>"""
    )


def test_hooh_tiles_read_price_sale_and_stock() -> None:
    page = hooh_page(
        hooh_item(
            1,
            '<div class="price"><span class="regular-price">$1,299.00</span></div>',
            "In Stock - Ships Next Business Day",
        ),
        hooh_item(
            2,
            '<div class="price"><del class="regular-price">$24.95 <span class="sr-only">'
            'Original price</span></del> <span class="sale-price">$19.95</span></div>',
            "Pre-Order - Expected to ship October 2025",
        ),
        hooh_item(
            3,
            '<div class="price"><span class="regular-price">$0.00</span></div>',
            "Retired - Sold Out",
            "Put me on the Waiting List",
        ),
        featured=hooh_item(9, '<div class="price">$5.00</div>', "In Stock"),
    )
    found = {tile.vendor_product_id: tile for tile in tiles.hookedonhallmark_com(page, HOOH_URL)}
    assert set(found) == {"1", "2", "3"}  # the featured block is not the listing
    assert (found["1"].price, found["1"].regular_price, found["1"].availability) == (
        Decimal("1299.00"),
        None,
        "available",
    )
    assert (found["2"].price, found["2"].regular_price, found["2"].availability) == (
        Decimal("19.95"),
        Decimal("24.95"),
        "preorder",
    )
    assert (found["3"].price, found["3"].availability, found["3"].unreadable) == (
        None,  # $0.00: no price, as on the product page (E24)
        "unavailable",
        None,
    )


def test_a_hooh_tile_without_its_price_block_is_unreadable() -> None:
    [tile] = tiles.hookedonhallmark_com(hooh_page(hooh_item(4, "", "In Stock")), HOOH_URL)
    assert tile.unreadable == "no price"
    assert tile.url == "https://www.hookedonhallmark.com/Ornament_p_4.html"


def os_card(product_id: int, price: str, button: str, data_price: str | None) -> str:
    link = f"https://www.ornament-shop.com/ornament-{product_id}/"
    data = f' data-product-price="{data_price}"' if data_price is not None else ""
    return f"""
    <li class="product"><article class="card" data-entity-id="{product_id}"{data}>
     <figure class="card-figure"><a href="{link}"><img></a>
      <figcaption class="card-figcaption"><div class="card-figcaption-body">
       <a class="card-figcaption-button quickview" data-product-id="{product_id}">Quick</a>
       <a href="{link}" class="button card-figcaption-button">{button}</a>
      </div></figcaption></figure>
     <div class="card-body"><h4 class="card-title"><a href="{link}">Ornament</a></h4>
      <div class="card-text" data-test-info-type="price">{price}</div></div>
    </article></li>"""


def os_price(now: str, was: str = "") -> str:
    hidden = "" if was else ' style="display: none;"'
    return f"""
     <div class="price-section rrp-price--withoutTax" style="display: none;">MSRP:
      <span data-product-rrp-price-without-tax class="price price--rrp"></span></div>
     <div class="price-section non-sale-price--withoutTax"{hidden}>Was:
      <span data-product-non-sale-price-without-tax class="price price--non-sale">{was}</span></div>
     <div class="price-section"><span class="price-now-label"{hidden}>Now:</span>
      <span data-product-price-without-tax class="price price--withoutTax">{now}</span></div>"""


def os_page(*cards: str) -> Selector:
    return Selector(text=f'<ul class="productGrid">{"".join(cards)}</ul>')


def test_os_cards_read_structured_price_was_and_button() -> None:
    page = os_page(
        os_card(1, os_price("$24.95"), "Add to Cart", "24.95"),
        os_card(2, os_price("$19.95", was="$29.95"), "Sold Out", "19.95"),
        os_card(3, '<span class="price-label">Call for pricing</span>', "Add to Cart", "0.00"),
        os_card(4, os_price("$45.00"), "Pre-Order Now", None),
    )
    found = {tile.vendor_product_id: tile for tile in tiles.ornament_shop_com(page, OS_URL)}
    assert found["1"] == Tile(found["1"].url, "1", Decimal("24.95"), None, "available")
    assert found["2"] == Tile(
        found["2"].url, "2", Decimal("19.95"), Decimal("29.95"), "unavailable"
    )
    assert (found["3"].price, found["3"].unreadable) == (None, None)  # call for pricing (E24)
    assert (found["4"].price, found["4"].availability) == (Decimal("45.00"), "preorder")


def test_an_os_card_whose_data_and_text_disagree_is_unreadable() -> None:
    [tile] = tiles.ornament_shop_com(
        os_page(os_card(5, os_price("$24.95"), "Add to Cart", "21.00")), OS_URL
    )
    assert tile.unreadable == "prices disagree"


def test_ho_grid_tiles_read_the_rendered_grid() -> None:
    grid = """<div id="productCategoryBlock"><div id="itemsBlock">
     <div class="product-cell" data-catalogid="25615"><div class="product-item">
      <div class="img"><a href="/1975-Betsey-Clark-Adorable-NB_p_25615.html">
       <img id="qv_25615"></a></div>
      <div class="product-meta"><div class="name"><a href="#">Betsey</a></div>
       <div class="price"><span class="hidden">Price:&nbsp;</span>$28.95</div></div></div></div>
     <div class="product-cell" data-catalogid="3116"><div class="product-item">
      <div class="img"><a href="https://www.hallmarkornaments.com/Sweet_p_3116.html"></a></div>
      <div class="product-meta"><div class="price"><span class="price1">$24.95</span>
       <del class="price2">$28.95&nbsp;</del><div class="on-sale">On Sale</div></div></div>
     </div></div>
     <div class="product-cell"><div class="product-item">
      <div class="img"><a href="/x_p_7.html"><img id="qv_7"></a></div></div></div>
    </div></div>"""
    found = {t.vendor_product_id: t for t in tiles.hallmark_ornaments_com(Selector(grid), HO_URL)}
    assert found["25615"] == Tile(
        "https://www.hallmarkornaments.com/1975-Betsey-Clark-Adorable-NB_p_25615.html",
        "25615",
        Decimal("28.95"),
    )
    assert (found["3116"].price, found["3116"].regular_price) == (
        Decimal("24.95"),
        Decimal("28.95"),
    )
    assert found["3116"].availability is None  # the grid shows no stock
    assert found["7"].unreadable == "no price"  # id from the image, price markup lost


# -- rules -----------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def stored(number: int, read_days_ago: float = 1.0, **values: object) -> rules.Stored:
    fields: dict[str, object] = {
        "price": Decimal("10.00"),
        "regular_price": None,
        "availability": "available",
        "release_year": 2019,
    }
    fields.update(values)
    return rules.Stored(
        id=number,
        vendor_product_id=str(number),
        path=f"/p{number}",
        page_read_at=NOW - timedelta(days=read_days_ago),
        **fields,  # type: ignore[arg-type]
    )


def tile(number: int, **values: object) -> Tile:
    fields: dict[str, object] = {"price": Decimal("10.00"), "availability": "available"}
    fields.update(values)
    return Tile(f"https://shop/p{number}", str(number), **fields)  # type: ignore[arg-type]


def test_each_reason_to_read_a_page() -> None:
    none_due = rules.Refresh()
    assert rules.decide(tile(1), stored(1), 2019, none_due) == (rules.UNCHANGED, [])
    assert rules.decide(tile(1), None, 2019, none_due) == (rules.NEW, [])
    assert rules.decide(tile(1), stored(1, delisted=True), 2019, none_due)[0] == rules.NEW
    assert rules.decide(tile(1, price=Decimal("9.00")), stored(1), 2019, none_due) == (
        rules.CHANGED,
        ["price"],
    )
    on_sale = tile(1, price=Decimal("8.00"), regular_price=Decimal("10.00"))
    assert rules.decide(on_sale, stored(1), 2019, none_due)[1] == ["price", "regular_price"]
    sold_out = tile(1, availability="unavailable")
    assert rules.decide(sold_out, stored(1), 2019, none_due)[1] == ["availability"]
    no_stock_shown = tile(1, availability=None)
    sold_out_stored = stored(1, availability="unavailable")
    assert rules.decide(no_stock_shown, sold_out_stored, 2019, none_due)[0] == rules.UNCHANGED
    assert rules.decide(tile(1), stored(1), 2020, none_due)[1] == ["release_year"]
    broken = tile(1, unreadable="no price")
    assert rules.decide(broken, stored(1), 2019, none_due) == (rules.UNREADABLE, [])
    assert rules.decide(None, stored(1), 2019, none_due) == (rules.UNREADABLE, [])
    due = rules.plan_refresh([stored(1, read_days_ago=3)], NOW, 7, 24)
    assert rules.decide(tile(1), stored(1, read_days_ago=3), 2019, due) == (rules.STALE, [])


def test_refresh_takes_the_oldest_pages_spread_over_a_week_of_syncs() -> None:
    catalog = [stored(n, read_days_ago=n / 200) for n in range(1, 1001)]  # up to 5 days
    plan = rules.plan_refresh(catalog, NOW, 7, 24)
    assert plan.quota == 6  # ⌈1000 / (7 × 24)⌉
    assert [s.id for s in catalog if plan.is_due(s)] == [995, 996, 997, 998, 999, 1000]
    assert rules.Refresh.from_json(plan.as_json()) == plan


def test_refresh_takes_every_overdue_page_of_the_listed_products() -> None:
    catalog = [stored(n, read_days_ago=8 + n) for n in range(1, 11)]
    catalog += [stored(n, read_days_ago=1) for n in range(11, 101)]
    catalog.append(stored(500, read_days_ago=30, delisted=True))
    plan = rules.plan_refresh(catalog, NOW, 7, 24)
    assert (plan.listed, plan.quota, plan.overdue) == (100, 1, 10)
    assert {s.id for s in catalog[:-1] if plan.is_due(s)} == set(range(1, 11))
    # The delisted product is not counted; its tile coming back makes it new (read anyway).


def test_with_full_syncs_scheduled_only_overdue_pages_are_refreshed_up_to_the_quota() -> None:
    catalog = [stored(n, read_days_ago=n / 200) for n in range(1, 1001)]  # up to 5 days
    plan = rules.plan_refresh(catalog, NOW, 7, 24, rules.OVERDUE)
    assert (plan.quota, plan.overdue, plan.taken) == (6, 0, 0)  # the full syncs re-read them
    assert not any(plan.is_due(s) for s in catalog)
    overdue = [stored(n, read_days_ago=8 + n) for n in range(1001, 1011)]  # a failed full sync
    plan = rules.plan_refresh(catalog + overdue, NOW, 7, 24, rules.OVERDUE)
    assert (plan.quota, plan.overdue, plan.taken) == (7, 10, 7)  # ⌈1010 / (7 × 24)⌉, oldest
    assert [s.id for s in overdue if plan.is_due(s)] == list(range(1004, 1011))
    assert rules.Refresh.from_json(plan.as_json()) == plan
    older = {key: value for key, value in plan.as_json().items() if key != "rule"}
    assert rules.Refresh.from_json(older).rule == rules.SPREAD  # recorded before the rules


def test_the_refresh_rule_counts_the_full_syncs_of_the_schedule() -> None:
    vendor, weekly = "hookedonhallmark_com", Schedule()  # weekly full syncs of every shop
    assert rules.refresh_rule(weekly, vendor, 7) == rules.OVERDUE
    assert rules.refresh_rule(weekly, vendor, 3) == rules.SPREAD  # a week is longer than 3 days
    assert rules.refresh_rule(replace(weekly, vendors=()), vendor, 7) == rules.SPREAD
    monthly = replace(weekly, sync=JobKind(cron="0 0 1 * *"))
    assert rules.refresh_rule(monthly, vendor, 7) == rules.SPREAD
    daily = replace(weekly, sync=JobKind(interval=DAY))
    assert rules.refresh_rule(daily, vendor, 1) == rules.OVERDUE
    # 7 days and 1 hour apart once a year (daylight saving time ends): still weekly.
    assert rules.refresh_rule(replace(weekly, timezone="America/New_York"), vendor, 7) == (
        rules.OVERDUE
    )


def test_quick_syncs_a_day_come_from_the_schedule() -> None:
    assert runs_per_day(JobKind(interval=HOUR)) == 24
    assert runs_per_day(JobKind(cron="*/30 6-17 * * *")) == 24
    assert runs_per_day(JobKind(cron="0 3 * * sun")) == 1 / 7
    assert runs_per_day(Schedule().quick_for("ornament_shop_com")) == 4  # its 12-card pages


def test_the_page_wins_where_it_disagrees_with_its_tile() -> None:
    shown = rules.shown(tile(1, price=Decimal("9.00"), availability=None))
    assert shown == {"price": "9.00", "regular_price": None}
    page = {"price": Decimal("10.00"), "regular_price": None, "availability": "unavailable"}
    assert rules.page_disagrees(shown, page) == ["price"]  # stock: the tile did not tell
    assert rules.page_disagrees(rules.shown(tile(1)), page) == ["availability"]
