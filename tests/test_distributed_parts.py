"""The pieces of distributed crawling on their own: the shared politeness budget (real Redis),
the request serializer, and the in-memory year-link cache."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from christmas_spiders.distributed import serializer
from christmas_spiders.distributed.politeness import ShopBudget
from christmas_spiders.distributed.yearlinks import MemoryYearLinks

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    server = redis.Redis.from_url(REDIS_URL)
    for key in server.scan_iter(match=f"{prefix}:*", count=1000):
        server.delete(key)
    server.close()


def _budget(prefix: str, **options: float) -> ShopBudget:
    return ShopBudget(redis.Redis.from_url(REDIS_URL), prefix, "ornament_shop_com", **options)


def test_the_budget_grants_at_most_its_concurrency(redis_prefix: str) -> None:
    budget = _budget(redis_prefix, concurrency=2, rate=10_000)
    assert budget.try_acquire("a") == 0
    assert budget.try_acquire("b") == 0
    assert budget.try_acquire("c") > 0  # every lease taken
    budget.release("a")
    assert budget.try_acquire("c") == 0


def test_an_unreturned_lease_expires(redis_prefix: str) -> None:
    budget = _budget(redis_prefix, concurrency=1, rate=10_000, lease_seconds=0.2)
    assert budget.try_acquire("crashed") == 0
    assert budget.try_acquire("next") > 0
    time.sleep(0.3)
    assert budget.try_acquire("next") == 0


def test_workers_together_never_exceed_the_shops_rate(redis_prefix: str) -> None:
    """Four workers, each with its own connection, asking as fast as they can for 1.5 s."""
    rate, seconds, granted = 20.0, 1.5, []

    def worker() -> None:
        budget = _budget(redis_prefix, concurrency=100, rate=rate)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            wait = budget.try_acquire(uuid.uuid4().hex)
            if wait == 0:
                granted.append(time.monotonic())
            else:
                time.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rate * seconds - 3 <= len(granted) <= rate * seconds + 2  # two tokens of burst
    gaps = [b - a for a, b in zip(sorted(granted), sorted(granted)[1:], strict=False)]
    assert sorted(gaps)[2] > 0.5 / rate  # spaced, not in bursts


def test_request_dicts_round_trip_through_json() -> None:
    request = {
        "url": "http://127.0.0.1:9/2019_c_300.html?viewall=1",
        "callback": "parse_category",
        "headers": {b"Referer": [b"http://127.0.0.1:9/"]},
        "body": b"",
        "meta": {"render": {"wait_for": "#itemsBlock .product-item", "timeout": 20}, "d": 1},
        "cb_kwargs": {"year": 2019, "page": 1},
        "flags": [],
        "priority": -1,
        "dont_filter": False,
        "$odd": {"$b": "not bytes"},
    }
    data = serializer.dumps(request)
    assert data.startswith(b"{")  # JSON, never a pickle
    assert serializer.loads(data) == request


def test_a_value_json_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot put object"):
        serializer.dumps({"meta": {"x": object()}})


def test_the_memory_year_link_cache_expires_and_drops() -> None:
    cache = MemoryYearLinks(ttl_seconds=0.2)
    vendor = f"vendor-{uuid.uuid4().hex[:6]}"
    cache.put(vendor, {2019: ["http://x.test/2019"], 2018: ["http://x.test/2018"]})
    assert cache.get(vendor, [2018, 2019, 2020]) == {
        2018: ["http://x.test/2018"],
        2019: ["http://x.test/2019"],
    }
    cache.drop(vendor, 2019)
    assert cache.get(vendor, [2019]) == {}
    time.sleep(0.25)
    assert cache.get(vendor, [2018]) == {}
