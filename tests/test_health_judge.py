"""The crawl-health verdict on its own (christmas_spiders.health.judge, pure): each check at its
threshold, a vendor's first run, small runs, and the thresholds read from configuration."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from christmas_spiders import config
from christmas_spiders.health.judge import Baseline, Run, Thresholds, judge

from .conftest import PROJECT_ROOT

DEFAULTS = Thresholds.from_config(config.Config())


def year(pages: int, **present: int) -> dict[str, int]:
    """Counts of one year: `pages` product pages, all items, every field shown unless given."""
    fields = ("name", "price", "sku", "availability", "availability_text", "image_url", "series")
    counts = {"pages": pages, "items": pages, "in_stock": pages, "in_stock/price": pages}
    counts |= {f"field/{name}": present.get(name, pages) for name in fields}
    if "price" in present:
        counts["in_stock/price"] = present["price"]
    return counts


def run(
    counts: Mapping[int, Mapping[str, int]],
    *,
    years: frozenset[int] | None = frozenset({2019}),
    vanished: Mapping[str, int] | None = None,
    reason: str = "finished",
    errors: int = 0,
) -> Run:
    return Run(counts, vanished or {}, years, reason, errors)


HEALTHY = Baseline({2019: year(40), 0: {"requests": 100}})


def test_a_run_like_the_last_healthy_one_is_ok() -> None:
    verdict = judge(run({2019: year(40), 0: {"requests": 100}}), HEALTHY, DEFAULTS)
    assert (verdict.health, verdict.reasons, verdict.collapsed) == ("ok", [], set())
    assert verdict.coverage["price"] == 1.0


@pytest.mark.parametrize(("shown", "health"), [(32, "ok"), (31, "suspect")])
def test_coverage_below_the_ratio_of_the_last_healthy_run_is_suspect(shown, health) -> None:
    verdict = judge(run({2019: year(40, image_url=shown)}), HEALTHY, DEFAULTS)  # 80% is the edge
    assert verdict.health == health
    if health == "suspect":
        assert verdict.reasons == ["image on 78% of 40 products (last healthy run: 100%)"]
        assert verdict.collapsed == {"image_url"}


@pytest.mark.parametrize(("found", "health"), [(32, "ok"), (31, "suspect")])
def test_a_year_short_of_products_is_suspect(found, health) -> None:
    verdict = judge(run({2019: year(found)}), HEALTHY, DEFAULTS)
    assert verdict.health == health
    if health == "suspect":
        assert verdict.reasons == ["2019: 31 products, last healthy run 40"]


def test_an_emptied_year_is_a_note_but_every_year_emptied_is_suspect() -> None:
    baseline = Baseline({2018: year(10), 2019: year(40)})
    one = judge(run({2019: year(40)}, years=frozenset({2018, 2019})), baseline, DEFAULTS)
    assert one.health == "ok"
    assert one.reasons == [
        "2018: no products, last healthy run 10: the year looks emptied; nothing of it is "
        "delisted (incomplete-year guard)"
    ]
    every = judge(run({}, years=frozenset({2018, 2019})), baseline, DEFAULTS)
    assert every.health == "suspect"
    assert every.reasons[-1] == "0 products in the 2 years crawled, last healthy runs 50"


def test_one_page_that_lost_its_price_is_suspect_without_any_history() -> None:
    """url/product mode: too few pages for coverage; the product itself lost its price."""
    lone = run({2019: year(1, price=0)}, years=None, vanished={"price": 1})
    verdict = judge(lone, Baseline({}), DEFAULTS)
    assert verdict.reasons == ["price gone from 1 of 1 products that had one"]
    assert verdict.collapsed == {"price"}


def test_a_few_products_losing_a_value_is_a_change_not_a_break() -> None:
    verdict = judge(run({2019: year(40, price=38)}, vanished={"price": 2}), HEALTHY, DEFAULTS)
    assert (verdict.health, verdict.collapsed) == ("ok", set())


def test_a_first_run_needs_a_price_on_most_products_in_stock() -> None:
    verdict = judge(run({2019: year(20, price=4)}), Baseline({}), DEFAULTS)
    assert verdict.reasons == [
        "price on 20% of 20 in-stock products (a first run needs at least 50%)"
    ]
    assert judge(run({2019: year(20, price=10)}), Baseline({}), DEFAULTS).health == "ok"


def test_problem_pages_errors_and_retries_count_above_the_last_healthy_run() -> None:
    baseline = Baseline({2019: year(40), 0: {"requests": 100, "retries": 30}}, 2, 100)
    whole = {"requests": 100, "retries": 70, "pages/problems": 15, "items/dropped": 1}
    verdict = judge(run({2019: year(40), 0: whole}, errors=13), baseline, DEFAULTS)
    assert verdict.reasons == [
        "problems on 40% of 40 product pages (last healthy run: 0%)",
        "13 errors for 100 requests (13%; last healthy run: 2%)",
    ]  # retries 70% against 30%: within 50 points


def test_a_crawl_that_ended_early_is_suspect() -> None:
    verdict = judge(run({2019: year(40)}, reason="closespider_timeout"), HEALTHY, DEFAULTS)
    assert verdict.reasons == ["the crawl ended early (finish reason closespider_timeout)"]


def test_thresholds_are_configuration() -> None:
    environ = {"CONFIG_PATH": str(PROJECT_ROOT / "config" / "default.json")}
    loaded = config.load({**environ, "CHRISTMAS_HEALTH_MIN_COVERAGE_RATIO": "0.5"})
    assert Thresholds.from_config(loaded).min_coverage_ratio == 0.5
    assert Thresholds.from_config(config.load(environ)) == DEFAULTS
    with pytest.raises(config.ConfigError) as error:
        config.load({**environ, "CHRISTMAS_HEALTH_MAX_VANISHED_SHARE": "2"})
    assert str(error.value) == (
        "CHRISTMAS_HEALTH_MAX_VANISHED_SHARE must be between 0.0 and 1.0, not 2.0."
    )


def test_values_lost_on_the_pages_read_are_weighed_against_those_pages_only() -> None:
    """A quick sync read 4 pages and confirmed 36 products from their tiles: 3 of the 4 pages
    lost their price, which the 36 stored prices must not dilute."""
    counts = {2019: year(40, price=37) | {"confirmed/field/price": 36}}
    verdict = judge(run(counts, vanished={"price": 3}), HEALTHY, DEFAULTS)
    assert verdict.reasons == ["price gone from 3 of 4 products that had one"]
    assert verdict.collapsed == {"price"}
