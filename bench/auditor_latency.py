"""Figure 7 — audit delivery: change-to-webhook latency, and the catch-up rate after downtime.

    python -m bench.auditor_latency [--quick]

A local signed-webhook receiver (webapi.auditor.receiver) takes the deliveries. Latency: the
worker runs while 10,000 price changes are committed as batched UPDATEs (100 products per
transaction, a transaction every 10 ms, as a busy crawl writes); each change's latency is its
arrival at the receiver minus its transaction's commit. Catch-up: the worker is stopped, the
backlog is written, the worker is started again; the rate counts from that start to the last
delivery. Runs in a scratch database of the real PostgreSQL (bench.services.Services).
`--quick`: 300 changes and a 1,000-change backlog.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.report import Row, log, markdown, percentile
from bench.session import Session, standalone
from christmas_spiders import config
from christmas_spiders.storage import database
from christmas_spiders.storage.products import upsert_products
from webapi.auditor.receiver import WebhookReceiver
from webapi.auditor.worker import Worker

FIGURE = "7"
SECRET = "bench"
PRODUCTS = 1000
PER_TRANSACTION = 100


def _catalog(engine: Engine) -> list[int]:
    items = [
        {
            "vendor": "ornament_shop_com",
            "vendor_product_id": str(number),
            "sku": f"QX{number:05d}",
            "name": f"Bench Ornament {number}",
            "price": Decimal("20.00"),
            "regular_price": None,
            "currency": "USD",
            "availability": "available",
            "availability_text": "In Stock",
            "release_year": 2019,
            "brand": "Hallmark",
            "link": f"http://127.0.0.1:9/bench-{number}/",
            "image_url": None,
            "series": None,
            "series_number": None,
            "artist": None,
        }
        for number in range(PRODUCTS)
    ]
    with engine.begin() as connection:
        upsert_products(connection, items)
        return list(connection.execute(sa.text("SELECT id FROM products ORDER BY id")).scalars())


def _write(engine: Engine, products: list[int], changes: int, pause: float) -> dict:
    """`changes` price changes, PER_TRANSACTION per UPDATE; returns commit time per change key
    (product id, new price)."""
    committed: dict[tuple[int, str], float] = {}
    chunks = [products[i : i + PER_TRANSACTION] for i in range(0, len(products), PER_TRANSACTION)]
    written = 0
    while written < changes:
        for chunk in chunks:
            if written >= changes:
                break
            with engine.begin() as connection:
                rows = connection.execute(
                    sa.text(
                        "UPDATE products SET price = price + 1 WHERE id = ANY(:ids) "
                        "RETURNING id, price"
                    ),
                    {"ids": chunk},
                ).all()
            now = time.time()
            committed.update({(product_id, str(price)): now for product_id, price in rows})
            written += len(rows)
            time.sleep(pause)
    return committed


def _settings(url: str, batch: int, receiver: WebhookReceiver) -> config.Config:
    entries = [
        {"name": "bench", "webhook": {"url": receiver.url(), "secret": SECRET}, "batch_size": batch}
    ]
    return config.load(
        {
            "CONFIG_PATH": str(config.CONFIG_DIR / "default.json"),
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "CHRISTMAS_SUBSCRIBERS": json.dumps(entries),
        }
    )


class _Running:
    def __init__(self, settings: config.Config) -> None:
        self.worker = Worker(settings)
        self._thread = threading.Thread(target=self.worker.run)

    def __enter__(self) -> Worker:
        self._thread.start()
        if not self.worker.ready.wait(60):
            raise RuntimeError("the audit worker did not start")
        return self.worker

    def __exit__(self, *exc_info: object) -> None:
        self.worker.stop()
        self._thread.join(60)


def run(url: str, changes: int, backlog: int, batch: int) -> list[tuple[str, str]]:
    """Measure on the (empty) database at `url` (postgresql://…)."""
    scratch = config.Config(database_url=url)
    engine = sa.create_engine(database.database_url(scratch))
    database.upgrade(engine, scratch)
    products = _catalog(engine)
    rows: list[tuple[str, str]] = []
    with WebhookReceiver(SECRET) as receiver:
        settings = _settings(url, batch, receiver)
        with _Running(settings):
            began = time.perf_counter()
            committed = _write(engine, products, changes, pause=0.01)
            writing = time.perf_counter() - began
            if not receiver.wait_for(lambda r: r.events_delivered >= changes, 120):
                raise RuntimeError("not every change was delivered")
        latencies = [
            (request.at - committed[event["product_id"], event["new_value"]]) * 1000
            for request in receiver.delivered()
            for event in request.payload["events"]
        ]
        delivered = receiver.change_ids()
        assert delivered == sorted(set(delivered)), "deliveries out of order or repeated"
        rows += [
            (
                f"{changes:,} changes written at {changes / writing:,.0f}/s "
                f"({PER_TRANSACTION} per transaction)",
                f"{writing:.1f} s",
            ),
            ("change-to-delivery latency, median", f"{statistics.median(latencies):.1f} ms"),
            ("change-to-delivery latency, p99", f"{percentile(latencies, 0.99):.1f} ms"),
            ("change-to-delivery latency, max", f"{max(latencies):.1f} ms"),
        ]

        before = len(delivered)
        _write(engine, products, backlog, pause=0)  # the worker is down
        began = time.perf_counter()
        with _Running(settings):
            started = time.perf_counter() - began
            if not receiver.wait_for(lambda r: r.events_delivered >= before + backlog, 300):
                raise RuntimeError("the backlog was not delivered")
            catching_up = time.perf_counter() - began
        rows += [
            ("worker start (connect, check schema, listen)", f"{started * 1000:.0f} ms"),
            (
                f"catch-up of {backlog:,} changes after downtime (batches of {batch})",
                f"{backlog / catching_up:,.0f} changes/s ({catching_up:.1f} s)",
            ),
        ]
    engine.dispose()
    return rows


def measure(session: Session) -> list[Row]:
    changes = session.scaled(10_000, 300)
    backlog = session.scaled(50_000, 1_000)
    batch = 100
    logging.getLogger("webapi.auditor").setLevel(logging.WARNING)
    url = session.services.scratch_database()
    log(f"audit worker: {changes:,} changes live, then a backlog of {backlog:,}")
    figures = run(url, changes, backlog, batch)
    session.services.drop(url)
    session.detail(
        FIGURE,
        "Audit delivery (signed webhooks to a local receiver)",
        markdown(["audit worker", "figure"], figures),
    )
    median = next(value for label, value in figures if label.endswith("median"))
    p99 = next(value for label, value in figures if label.endswith("p99"))
    catch_up = next(value for label, value in figures if label.startswith("catch-up"))
    rows = [
        Row(
            FIGURE,
            f"audit delivery: change-to-webhook latency for {changes:,} changes, median / p99",
            f"{median} / {p99}",
            "",
            "no numeric goal (README: 7.3 ms / 20–42 ms)",
            None,
        ),
        Row(
            FIGURE,
            f"audit delivery: catch-up after downtime ({backlog:,} changes, batches of {batch})",
            catch_up,
            "",
            "no numeric goal (README: ~8,000–8,500 changes/s)",
            None,
        ),
    ]
    return rows


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
