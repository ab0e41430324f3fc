"""Keyset paging over /v1/products while a writer changes prices through the real store code:
every product the writer leaves alone is listed exactly once, in every sort order."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from christmas_spiders.config import Config
from christmas_spiders.storage.products import upsert_products
from webapi import auth, create_app, db

from .test_api import VENDOR_IDS, product_item

PRODUCTS = 240
LIMIT = 20
# A crawl round between every two of the first pages; then the crawl is over (a writer that
# never stops keeps moving products past the cursor of an updated_at walk: a live feed).
ROUNDS = PRODUCTS // LIMIT - 1
WAIT = 60.0  # generous: each round is one upsert of the catalog


def crawl_items(moving: set[int], round_number: int) -> list[dict[str, Any]]:
    """The whole catalog as a crawl finds it: the `moving` products (by index) at a new price
    each round, jumping across the price order, now and then without a price; the rest as
    they were."""
    items = []
    for number in range(PRODUCTS):
        price: Decimal | None = Decimal(5 + number % 97) + Decimal("0.95")
        if number % 11 == 0:
            price = None  # no price shown: paged after every price
        if number in moving:
            step = (number * 37 + round_number * 101) % 150
            price = None if step % 13 == 0 else Decimal(step) + Decimal("0.50")
        items.append(
            product_item(
                VENDOR_IDS[number % 3],
                f"k{number:03d}",
                name=f"{2000 + number % 20} Ornament {number * 7919 % PRODUCTS:03d}",
                price=price,
            )
        )
    return items


class LockstepCrawl(threading.Thread):
    """Writes the catalog again, with the moving products' new prices, each time `step()` is
    called, in its own thread and transaction (as a crawl's store pipeline does)."""

    def __init__(self, engine: Engine, moving: set[int]) -> None:
        super().__init__(name="lockstep-crawl", daemon=True)
        self.engine = engine
        self.moving = moving
        self.updated: list[int] = []  # products the store found changed, per round
        self._asked: queue.Queue[bool] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()

    def run(self) -> None:
        while self._asked.get():
            try:
                with self.engine.begin() as connection:
                    round_number = len(self.updated) + 1
                    result = upsert_products(connection, crawl_items(self.moving, round_number))
                self.updated.append(result.updated)
                self._done.put(None)
            except BaseException as error:  # handed to the test thread, which raises it
                self._done.put(error)

    def step(self) -> None:
        """One crawl round, committed before this returns."""
        self._asked.put(True)
        error = self._done.get(timeout=WAIT)
        if error is not None:
            raise error

    def finish(self) -> None:
        self._asked.put(False)
        self.join(WAIT)


@pytest.fixture
def client(make_config: Callable[..., Config], engine: Engine) -> Iterator[FlaskClient]:
    app = create_app(make_config(CHRISTMAS_API_RATE_LIMIT="10000000"))
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "pager")
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    yield test_client
    app.extensions[db.EXTENSION].dispose()


def product_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT vendor_product_id, id FROM products").all()
    return dict(rows)


def walk_while_crawling(client: FlaskClient, crawl: LockstepCrawl, sort: str) -> list[int]:
    """Every product id of a walk through the pages in `sort` order, with a crawl round between
    each two of the first ROUNDS + 1 pages."""
    seen: list[int] = []
    rounds_before = len(crawl.updated)
    cursor = None
    for _ in range(10 * PRODUCTS // LIMIT):
        params = {"sort": sort, "limit": LIMIT, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/products", query_string=params)
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            assert len(crawl.updated) - rounds_before == ROUNDS, "fewer pages than rounds"
            return seen
        if len(crawl.updated) - rounds_before < ROUNDS:
            crawl.step()
    raise AssertionError(f"sort={sort}: the pages do not end")


def test_paging_while_prices_change_lists_every_unchanged_product_exactly_once(
    client: FlaskClient, engine: Engine
) -> None:
    moving = set(range(0, PRODUCTS, 4))
    with engine.begin() as connection:
        upsert_products(connection, crawl_items(moving, 0))
    ids = product_ids(engine)
    unchanged = set(ids.values()) - {ids[f"k{number:03d}"] for number in moving}
    crawl = LockstepCrawl(engine, moving)
    crawl.start()
    try:
        for sort in ("id", "price", "-price", "name", "-name", "updated_at"):
            counts = Counter(walk_while_crawling(client, crawl, sort))
            assert set(counts) <= set(ids.values()), sort
            once = {product_id: counts[product_id] for product_id in unchanged}
            assert once == dict.fromkeys(unchanged, 1), sort
            if sort == "id":  # ids never move: the moving products too are listed once
                assert counts == Counter(ids.values())
    finally:
        crawl.finish()
    # The writes were real: every round changed exactly the moving products.
    assert crawl.updated == [len(moving)] * ROUNDS * 6
