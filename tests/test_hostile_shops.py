"""Hostile shop answers (tests/replica/faults.py) against real `scrapy crawl`s of the replica:
pages in windows-1252 (labelled right or wrong), redirect loops, a 20 MB page, a product
disallowed by robots.txt, `Retry-After: 120` and as an HTTP date, a connection reset mid-body.
Each is counted in the run's stats, and nothing else is lost: every other product stored, the
run finished, only the product that is really gone delisted.

The rules themselves (Retry-After, charset) are tested as pure functions first.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from scrapy.http import HtmlResponse, Request
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from sqlalchemy.engine import Engine

from christmas_spiders.middlewares import (
    CharsetMiddleware,
    RetryWaits,
    is_utf8,
    legacy_encoding,
    mislabelled_utf8,
    retry_after_seconds,
)
from christmas_spiders.storage.schema import crawl_runs, products
from tests.replica.models import EXPECT_ITEM, STATUS_GONE, STATUS_OK, Product

from .crawl import scrapy_crawl
from .replica.client import Replica
from .test_distributed import expected_ids, stored

HOOH, OS = "hookedonhallmark_com", "ornament_shop_com"
FAST = {"AUTOTHROTTLE_ENABLED": "0", "RETRY_BACKOFF_BASE": "0.05", "RETRY_BACKOFF_MAX": "1"}
# A name with what windows-1252 has beyond ASCII: accents, ’, ®, ™, an em dash.
LEGACY_NAME = "2019 Père Noël’s Café® Sleigh™ — Édition {}"

# -- the rules, as pure functions ----------------------------------------------------------------

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def test_retry_after_reads_delta_seconds_and_http_dates() -> None:
    assert retry_after_seconds(b"120", NOW) == 120
    assert retry_after_seconds(" 7 ", NOW) == 7
    assert retry_after_seconds(b"Fri, 04 Dec 2026 12:02:00 GMT", NOW) == 120
    assert retry_after_seconds(b"Fri, 04 Dec 2026 11:59:00 GMT", NOW) == 0  # in the past
    assert retry_after_seconds(b"in a while", NOW) is None
    assert retry_after_seconds(None, NOW) is None


def test_retry_after_is_honoured_in_full_up_to_its_own_maximum() -> None:
    waits = RetryWaits(base=1.0, maximum=60.0, retry_after_max=900.0)
    assert waits.wait(1, 120.0) == 120.0  # beyond RETRY_BACKOFF_MAX: never retried sooner
    assert waits.wait(1, 900.0) == 900.0
    assert waits.wait(1, 901.0) is None  # longer than RETRY_AFTER_MAX: give up, not retry early
    assert waits.wait(6, 0.0, jitter=1.0) == 32.0  # `Retry-After: 0` waits our backoff
    assert waits.wait(3, None, jitter=1.0) == 4.0
    assert waits.wait(12, None, jitter=1.25) == 60.0  # the backoff alone stays capped


@pytest.mark.parametrize(
    ("setting", "value"),
    [("RETRY_AFTER_MAX", "-1"), ("RETRY_WAIT_SCALE", "0"), ("RETRY_BACKOFF_BASE", "120")],
)
def test_a_bad_retry_setting_is_refused_naming_it(setting: str, value: str) -> None:
    with pytest.raises(ValueError, match=setting):
        RetryWaits.from_settings(Settings({setting: value}))


def test_a_legacy_page_under_a_utf8_label_is_told_from_utf8_with_a_bad_byte() -> None:
    legacy = LEGACY_NAME.format(1).encode("cp1252")
    assert not is_utf8(legacy) and mislabelled_utf8(legacy)
    mixed = "Café® ".encode() + b"\x92"  # real UTF-8 with one stray byte
    assert not is_utf8(mixed) and not mislabelled_utf8(mixed)
    assert legacy_encoding(b'<meta charset="windows-1252">' + legacy) == "cp1252"
    assert legacy_encoding(b'<meta charset="iso-8859-15">' + legacy) == "iso8859-15"
    assert legacy_encoding(b'<meta charset="utf-8">' + legacy) == "cp1252"  # the web's default


def _page(body: bytes, charset: str) -> HtmlResponse:
    headers = {"Content-Type": f"text/html; charset={charset}"}
    return HtmlResponse("http://shop.test/p", body=body, headers=headers)


def test_charset_middleware_reads_mislabelled_pages_and_counts_them() -> None:
    crawler = get_crawler()
    crawler.stats.open_spider()
    middleware = CharsetMiddleware.from_crawler(crawler)
    request = Request("http://shop.test/p")
    name = LEGACY_NAME.format(1)
    legacy = f'<html><head><meta charset="utf-8"></head><h1>{name}</h1></html>'.encode("cp1252")

    assert (
        middleware.process_response(request, _page(legacy, "windows-1252")).css("h1::text").get()
        == name
    )  # labelled right: read as labelled
    fixed = middleware.process_response(request, _page(legacy, "utf-8"))
    assert (fixed.encoding, fixed.css("h1::text").get()) == ("cp1252", name)
    mixed = middleware.process_response(request, _page(name.encode() + b"\x92", "utf-8"))
    assert mixed.encoding == "utf-8" and mixed.text.endswith("\ufffd")
    plain = middleware.process_response(request, _page(name.encode(), "utf-8"))
    assert plain.text == name
    assert crawler.stats.get_stats() == {
        "encoding/cp1252": 2,
        "encoding/mislabelled": 1,
        "encoding/invalid_utf8": 1,
    }


# -- real crawls against hostile shops -----------------------------------------------------------


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "CHRISTMAS_DATA_DIR": str(tmp_path / "data")}


def _run(engine: Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(sa.select(crawl_runs).where(crawl_runs.c.id == run_id)).one()
    return dict(row._mapping)


def _plain_products(
    replica: Replica, vendor: str, count: int, year: int | None = None
) -> list[Product]:
    """Products with no edge case of their own: what happens to them is the fault's doing."""
    shop = replica.shop(vendor)
    found = [
        product
        for product in (shop.product(index) for index in range(len(shop)))
        if product.expect == EXPECT_ITEM and product.status == STATUS_OK
        if not product.edge_cases and not product.quirks and year in (None, product.year)
    ]
    assert len(found) >= count
    return found[:count]


@pytest.fixture
def first_crawl(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Every OS product stored by a clean crawl; the environment of the next crawl."""
    env = _env(database_url, tmp_path)
    base_url = replica_reset.base_urls[OS]
    result = scrapy_crawl(OS, env=env, arguments={"base_url": base_url}, settings=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(stored(engine, OS)) == expected_ids(replica_reset, OS)
    yield env


def test_hostile_product_pages_are_counted_and_lose_nothing_else(
    replica_reset: Replica, first_crawl: dict[str, str], engine: Engine
) -> None:
    replica = replica_reset
    (
        cp1252,
        wrong_header,
        mislabelled,
        loop,
        chain,
        huge,
        forbidden,
        reset,
        retry_after,
        retry_after_date,
        gone,
    ) = _plain_products(replica, OS, 11)
    names = {}
    for number, (product, kind) in enumerate(
        [
            (cp1252, "cp1252"),
            (wrong_header, "cp1252_wrong_header"),
            (mislabelled, "cp1252_mislabelled"),
        ]
    ):
        names[product.vendor_product_id] = LEGACY_NAME.format(number)
        replica.set_product(OS, product.vendor_product_id, name=names[product.vendor_product_id])
        replica.faults(OS, {"kind": kind, "times": None}, path=product.listed_path)
    always = [(loop, "redirect_loop"), (chain, "redirect_chain"), (huge, "huge")]
    for product, kind in always:
        replica.faults(OS, {"kind": kind, "times": None}, path=product.listed_path)
    replica.disallow(OS, forbidden.listed_path)
    replica.faults(OS, {"kind": "reset"}, path=reset.listed_path)  # once, then the page
    replica.faults(OS, {"kind": "429", "retry_after": 120}, path=retry_after.listed_path)
    replica.faults(
        OS,
        {"kind": "503", "retry_after": 120, "retry_after_date": True},
        path=retry_after_date.listed_path,
    )
    replica.set_product(OS, gone.vendor_product_id, gone=True)  # 404: really gone

    # Time scaled by 1/100: the shop's two minutes are 1.2 s here.
    settings = {**FAST, "RETRY_WAIT_SCALE": "0.01"}
    arguments = {"base_url": replica.base_urls[OS]}
    result = scrapy_crawl(OS, env=first_crawl, arguments=arguments, settings=settings)
    assert result.returncode == 0, result.stderr[-4000:]

    run = _run(engine, 2)
    stats = run["stats"]
    assert (run["status"], run["close_reason"]) == ("finished", "finished")
    # The unread pages, each counted by its reason.
    assert {key: value for key, value in stats.items() if key.startswith("pages/unread/")} == {
        "pages/unread/redirect_loop": 2,  # A → B → A (duplicate filter) and the endless chain
        "pages/unread/too_large": 1,
        "pages/unread/robots_txt": 1,
    }
    assert stats["robotstxt/forbidden"] == 1
    assert stats["downloader/exception_type_count/scrapy.exceptions.DownloadCancelledError"] == 1
    shop = replica.shop(OS)
    gone_before = sum(shop.product(index).status == STATUS_GONE for index in range(len(shop)))
    assert stats["pages/skipped/not_found"] == gone_before + 1  # E22's 404 page, and ours
    # Windows-1252 pages: read right whatever their labels say.
    assert (stats["encoding/cp1252"], stats["encoding/mislabelled"]) == (3, 2)
    # The reset and the Retry-After answers were retried, the latter after the shop's wait.
    assert stats["retry/reason_count/scrapy.exceptions.ResponseDataLossError"] == 1
    assert stats["retry/retry_after_honoured"] == 2
    assert 120 <= stats["retry/retry_after_longest"] <= 121  # 120 s, or the date (whole seconds)
    assert "retry/max_reached" not in stats and "retry/retry_after_too_long" not in stats
    # What the shop saw: the chain went REDIRECT_MAX_TIMES (10) redirects deep, nothing
    # refused was asked for twice.
    assert replica.stats(OS)["faulted"] == {
        "cp1252": 1,
        "cp1252_wrong_header": 1,
        "cp1252_mislabelled": 1,
        "redirect_loop": 2,
        "redirect_chain": 11,
        "huge": 1,
        "reset": 1,
        "429": 1,
        "503": 1,
    }

    now = stored(engine, OS)
    started = run["started_at"]
    for product_id, name in names.items():
        assert now[product_id]["name"] == unicodedata.normalize("NFC", name)
    for product in (cp1252, wrong_header, mislabelled, reset, retry_after, retry_after_date):
        assert now[product.vendor_product_id]["last_synced_at"] >= started
    # The unread products stay as the first crawl stored them, listed; only the gone one goes.
    for product in (loop, chain, huge, forbidden):
        row = now[product.vendor_product_id]
        assert row["last_synced_at"] < started and row["delisted_at"] is None
    with engine.connect() as connection:
        delisted = connection.execute(
            sa.select(products.c.vendor_product_id).where(products.c.delisted_at.is_not(None))
        ).scalars()
        assert list(delisted) == [gone.vendor_product_id]
    assert stats["delisted"] == 1
    others = expected_ids(replica, OS) - {gone.vendor_product_id}
    synced = {pid for pid, row in now.items() if row["last_synced_at"] >= started}
    assert synced == others - {p.vendor_product_id for p in (loop, chain, huge, forbidden)}


def test_a_retry_after_beyond_its_maximum_gives_up_and_delists_nothing(
    replica_reset: Replica, first_crawl: dict[str, str], engine: Engine
) -> None:
    """Two hours, as an HTTP date: the request is not retried sooner than asked, but given up
    (counted); the run cannot know what it missed, so it delists nothing."""
    replica = replica_reset
    waiting, gone = _plain_products(replica, OS, 2)
    two_hours = {"kind": "429", "retry_after": 7200, "retry_after_date": True}
    replica.faults(OS, two_hours, path=waiting.listed_path)
    replica.set_product(OS, gone.vendor_product_id, gone=True)
    arguments = {"base_url": replica.base_urls[OS]}
    result = scrapy_crawl(OS, env=first_crawl, arguments=arguments, settings=FAST)
    assert result.returncode == 0, result.stderr[-4000:]
    run = _run(engine, 2)
    stats = run["stats"]
    assert run["status"] == "finished"
    assert stats["retry/retry_after_too_long"] == 1
    assert stats["pages/unread/http_429"] == 1
    assert any(key.startswith("delisted/skipped_") for key in stats)  # on purpose, and why
    assert "retry/count" not in stats  # not retried at all
    assert replica.stats(OS)["faulted"] == {"429": 1}
    assert all(row["delisted_at"] is None for row in stored(engine, OS).values())


def test_hooh_follows_product_redirects_itself_and_stops_loops_too(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """HooH product redirects are followed by the spider, not by Scrapy (a retired product
    301s to its category): a loop and an endless chain still end, counted."""
    replica = replica_reset
    year = 2019
    loop, chain = _plain_products(replica, HOOH, 2, year)
    replica.faults(HOOH, {"kind": "redirect_loop", "times": None}, path=loop.listed_path)
    replica.faults(HOOH, {"kind": "redirect_chain", "times": None}, path=chain.listed_path)
    arguments = {"base_url": replica.base_urls[HOOH], "year": str(year)}
    result = scrapy_crawl(
        HOOH, env=_env(database_url, tmp_path), arguments=arguments, settings=FAST
    )
    assert result.returncode == 0, result.stderr[-4000:]
    stats = _run(engine, 1)["stats"]
    assert stats["pages/unread/redirect_loop"] == 2
    assert replica.stats(HOOH)["faulted"] == {"redirect_loop": 2, "redirect_chain": 11}
    expected = expected_ids(replica, HOOH, {year}) - {
        loop.vendor_product_id,
        chain.vendor_product_id,
    }
    assert set(stored(engine, HOOH)) == expected
