"""The pieces of distributed crawling on their own: the shared politeness budget (real Redis),
the request serializer, and the in-memory year-link cache."""

from __future__ import annotations

import os
import threading
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


class FakeClock:
    """A clock the test moves, in whole milliseconds (returned in seconds)."""

    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, milliseconds: int) -> None:
        self.ms += milliseconds


def _budget(prefix: str, clock: FakeClock, **options: float) -> ShopBudget:
    return ShopBudget(
        redis.Redis.from_url(REDIS_URL), prefix, "ornament_shop_com", clock=clock, **options
    )


def test_the_budget_grants_at_most_its_concurrency(redis_prefix: str) -> None:
    clock = FakeClock()
    budget = _budget(redis_prefix, clock, concurrency=2, rate=10_000)
    assert budget.try_acquire("a") == 0
    clock.advance(1)  # a token again (10 a millisecond)
    assert budget.try_acquire("b") == 0
    clock.advance(1)
    assert budget.try_acquire("c") > 0  # every lease taken
    budget.release("a")
    assert budget.try_acquire("c") == 0


def test_an_unreturned_lease_expires(redis_prefix: str) -> None:
    clock = FakeClock()
    budget = _budget(redis_prefix, clock, concurrency=1, rate=10_000, lease_seconds=0.2)
    assert budget.try_acquire("crashed") == 0
    clock.advance(199)
    assert budget.try_acquire("next") > 0  # still leased
    clock.advance(1)
    assert budget.try_acquire("next") == 0  # expired 200 ms after it was granted


def test_workers_together_never_exceed_the_shops_rate(redis_prefix: str) -> None:
    """Four workers, each with its own connection, all asking at once at every step of a
    clock moving 4 ms a step for 1.6 s: the shop grants one request every 1/rate seconds,
    never two at once, and never more than the rate."""
    rate = 15.625  # a token every 64 ms, exactly (1/64 a millisecond is exact in binary)
    steps, step_ms, workers = 400, 4, 4
    clock = FakeClock()
    start = clock.ms
    granted: list[int] = []
    lock = threading.Lock()
    # Every worker asks, then waits for the others; the last to arrive moves the clock.
    rounds = threading.Barrier(workers, action=lambda: clock.advance(step_ms), timeout=60)

    def worker() -> None:
        budget = _budget(redis_prefix, clock, concurrency=100, rate=rate)
        for _ in range(steps):
            if budget.try_acquire(uuid.uuid4().hex) == 0:
                with lock:
                    granted.append(clock.ms - start)
            rounds.wait()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(granted) == [64 * n for n in range(25)]


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
    clock = FakeClock()
    cache = MemoryYearLinks(ttl_seconds=60, clock=clock)
    vendor = f"vendor-{uuid.uuid4().hex[:6]}"
    cache.put(vendor, {2019: ["http://x.test/2019"], 2018: ["http://x.test/2018"]})
    assert cache.get(vendor, [2018, 2019, 2020]) == {
        2018: ["http://x.test/2018"],
        2019: ["http://x.test/2019"],
    }
    cache.drop(vendor, 2019)
    assert cache.get(vendor, [2019]) == {}
    clock.advance(59_999)
    assert cache.get(vendor, [2018]) == {2018: ["http://x.test/2018"]}
    clock.advance(1)
    assert cache.get(vendor, [2018]) == {}  # expired 60 s after it was put
