"""History queries on a real PostgreSQL: price series, window figures, the change feed, and how
far the history is final while other transactions are still writing it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders.storage import history
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import product_changes, products

from .test_storage import item, write


def _product_id(engine: Engine, vendor_product_id: str = "24813") -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(products.c.id).where(products.c.vendor_product_id == vendor_product_id)
        ).scalar_one()


def _set_change_times(engine: Engine, product_id: int, *days_ago: int) -> list[datetime]:
    """Back-date the product's changes, oldest first, to the given days ago."""
    now = datetime.now(UTC)
    stamps = [now - timedelta(days=days) for days in days_ago]
    with engine.begin() as connection:
        ids = connection.execute(
            sa.select(product_changes.c.id)
            .where(product_changes.c.product_id == product_id)
            .order_by(product_changes.c.id)
        ).scalars()
        for change_id, stamp in zip(ids, stamps, strict=True):
            connection.execute(
                sa.update(product_changes)
                .where(product_changes.c.id == change_id)
                .values(changed_at=stamp)
            )
    return stamps


def _price_history(engine: Engine, *prices: str | None) -> int:
    for price in prices:
        write(engine, item(price=None if price is None else Decimal(price)))
    return _product_id(engine)


def _history(connection, product_id: int, **window) -> history.ProductHistory:
    return history.product_histories(connection, [product_id], **window)[product_id]


def test_price_series_starts_at_the_listing_and_follows_each_change(engine: Engine) -> None:
    product_id = _price_history(engine, "17.95", "15.00", None, "16.50")
    write(engine, item(price=Decimal("16.50"), availability="unavailable"))  # not a price point
    with engine.connect() as connection:
        series = _history(connection, product_id).prices
    assert [point.price for point in series] == [
        Decimal("17.95"),
        Decimal("15.00"),
        None,
        Decimal("16.50"),
    ]
    assert [point.change_id for point in series] == sorted(point.change_id for point in series)


def test_price_series_window_opens_with_the_price_then_in_effect(engine: Engine) -> None:
    product_id = _price_history(engine, "17.95", "15.00", "14.00", "19.00")
    stamps = _set_change_times(engine, product_id, 30, 20, 10, 1)
    with engine.connect() as connection:
        window = _history(
            connection, product_id, since=stamps[0] + timedelta(days=15), until=stamps[3]
        ).prices
    # 15.00 was in effect when the window opened (day -15); 19.00 is after `until`.
    assert [point.price for point in window] == [Decimal("15.00"), Decimal("14.00")]


def test_price_figures_over_a_window(engine: Engine) -> None:
    product_id = _price_history(engine, "17.95", "15.00", "21.00", "18.00")
    stamps = _set_change_times(engine, product_id, 40, 20, 10, 2)
    with engine.connect() as connection:
        everything = _history(connection, product_id).figures()
        fortnight = _history(connection, product_id, since=stamps[1] + timedelta(days=6))
    last_fortnight = fortnight.figures()
    assert (everything.lowest, everything.highest, everything.latest) == (
        Decimal("15.00"),
        Decimal("21.00"),
        Decimal("18.00"),
    )
    assert everything.points == 4
    # The window opens on day -14 with 15.00 in effect, then 21.00 and 18.00.
    assert (last_fortnight.lowest, last_fortnight.highest) == (Decimal("15.00"), Decimal("21.00"))
    assert last_fortnight.latest_at == stamps[3]


def test_price_figures_leave_out_suspicious_prices_and_no_price(engine: Engine) -> None:
    # 179.50 is a 10× jump (flagged suspicious by the trigger), then back (flagged too).
    product_id = _price_history(engine, "17.95", "179.50", "17.95", None, "16.00")
    with engine.connect() as connection:
        sane = _history(connection, product_id).figures()
        raw = _history(connection, product_id).figures(include_suspicious=True)
    assert (sane.lowest, sane.highest, sane.latest) == (
        Decimal("16.00"),
        Decimal("17.95"),
        Decimal("16.00"),
    )
    assert raw.highest == Decimal("179.50")


def test_price_figures_of_a_window_without_history(engine: Engine) -> None:
    with engine.connect() as connection:
        figures = _history(connection, 123456).figures()
    assert figures == history.PriceFigures(None, None, None, None, 0)


def test_change_feed_since_an_id_with_filters(engine: Engine) -> None:
    write(
        engine,
        item(),
        item(vendor="ornament_shop_com", vendor_product_id="9", link="http://127.0.0.1:9/9"),
    )
    write(engine, item(price=Decimal("15.00"), availability="unavailable"))
    write(
        engine,
        item(
            vendor="ornament_shop_com",
            vendor_product_id="9",
            link="http://127.0.0.1:9/9",
            availability="preorder",
        ),
    )
    with engine.connect() as connection:
        settled = history.settled_change_id(connection)
        assert settled is not None
        feed = history.change_feed(connection, 0, settled).changes
        listed_last = max(change.id for change in feed if change.kind == "listed")
        since = history.change_feed(connection, listed_last, settled)
        stock = history.change_feed(
            connection,
            0,
            settled,
            kinds=["changed"],
            fields=["availability"],
            vendors=["hookedonhallmark_com"],
        )
        first_two = history.change_feed(connection, 0, settled, limit=2)
        capped = history.change_feed(connection, 0, listed_last)
    assert [(c.kind, c.field, c.vendor) for c in feed] == [
        ("listed", None, "hookedonhallmark_com"),
        ("listed", None, "ornament_shop_com"),
        ("changed", "price", "hookedonhallmark_com"),
        ("changed", "availability", "hookedonhallmark_com"),
        ("changed", "availability", "ornament_shop_com"),
    ]
    assert settled == feed[-1].id
    assert [c.id for c in since.changes] == [c.id for c in feed[2:]]
    assert since.next_after_id == settled
    assert [(c.old_value, c.new_value) for c in stock.changes] == [("available", "unavailable")]
    assert stock.next_after_id == settled  # the rows left out by the filters are behind us
    assert stock.changes[0].vendor_name == "Hooked on Hallmark"
    assert stock.changes[0].link == item()["link"]
    assert [c.id for c in first_two.changes] == [c.id for c in feed[:2]]
    assert first_two.next_after_id == feed[1].id
    assert [c.id for c in capped.changes] == [c.id for c in feed[:2]]


def test_change_feed_pages_through_a_long_history_in_bounded_windows(engine: Engine) -> None:
    write(engine, item())
    product_id = _product_id(engine)
    with engine.begin() as connection:
        for price in range(1, 2501):  # 2,500 changes in one burst
            connection.execute(
                sa.update(products).where(products.c.id == product_id).values(price=price)
            )
        settled = history.settled_change_id(connection)
    assert settled is not None
    seen: list[int] = []
    after = 0
    with engine.connect() as connection:
        while after < settled:
            page = history.change_feed(connection, after, settled, limit=500)
            assert page.next_after_id > after
            assert page.next_after_id - after <= 1000  # one page never scans more ids
            seen += [change.id for change in page.changes]
            after = page.next_after_id
        by_product = history.change_feed(connection, 0, settled, limit=5000, product_id=product_id)
    assert seen == list(range(1, settled + 1))
    assert len(by_product.changes) == settled == 2501


def test_history_is_not_final_past_a_transaction_still_writing_it(engine: Engine) -> None:
    """Ids are allocated in order but committed in any order: the reader must not pass an id
    that an open transaction may still commit."""
    write(engine, item(), item(vendor_product_id="2", link="http://127.0.0.1:9/2"))
    with engine.connect() as connection:
        before = history.settled_change_id(connection)
    slow = engine.connect()
    slow_transaction = slow.begin()
    upsert_products(slow, [item(price=Decimal("10.00"))])  # takes the next id, uncommitted
    write(engine, item(vendor_product_id="2", link="http://127.0.0.1:9/2", price=Decimal("9.00")))
    try:
        with engine.connect() as connection:
            high, writers = history.change_horizon(connection)
            assert high == before + 2  # the later id is visible, the earlier one is not
            assert len(writers) == 1
            assert history.settled_change_id(connection, timeout=0.2) is None
            assert [c.id for c in history.change_feed(connection, before, high).changes] == [high]
        slow_transaction.commit()
        with engine.connect() as connection:
            assert history.settled_change_id(connection, timeout=0.2) == high
            feed = history.change_feed(connection, before, high).changes
            assert [c.id for c in feed] == [high - 1, high]
    finally:
        slow.close()
