"""Spider arguments (vendor-sites.md §C1), validated before any request is made.

    -a year=2019 | year=2015-2019 | year=1998,2003     sync those years
    -a url=<product page URL>                         sync one product
    -a product_id=<products.id>                       re-sync a stored product
    (none)                                            sync every year the shop lists
    -a base_url=http://127.0.0.1:PORT                 crawl a replica or mirror
    -a run_id=<crawl_runs.id>                         join that crawl run
    -a mode=full | mode=quick                         every product page (default), or the
                                                      listings first (christmas_spiders.quick)
    -a refresh=spread | refresh=overdue               mode=quick: which pages it re-reads
                                                      (default: from the schedule; quick.rules)

A bad argument raises ``ArgumentError`` with one sentence; ``scrapy crawl`` reports it as a usage
error and exits non-zero before the crawl starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

FIRST_YEAR = 1973
_YEAR = re.compile(r"^\d{4}$")
_KNOWN = ("year", "url", "product_id", "base_url", "run_id", "mode", "refresh")
MODES = ("full", "quick")  # full: every product page; quick: listings first (issue #16)
REFRESH_RULES = ("spread", "overdue")  # a quick sync's refresh rule (quick.rules)


class ArgumentError(ValueError):
    """A spider argument that cannot work, phrased as one sentence."""


@dataclass(frozen=True)
class CrawlTarget:
    """What one crawl syncs: some years, every year (years=None), one URL or one product."""

    years: tuple[int, ...] | None = None
    url: str | None = None
    product_id: int | None = None
    sync: str = "full"  # full or quick (MODES): how the listed products are synced
    refresh: str | None = None  # quick: REFRESH_RULES, or None (the schedule decides)

    @property
    def mode(self) -> str:
        if self.url:
            return "url"
        if self.product_id is not None:
            return "product_id"
        return "years" if self.years else "all"


def _year(text: str) -> int:
    text = text.strip()
    last = date.today().year + 1
    if not _YEAR.match(text) or not FIRST_YEAR <= int(text) <= last:
        raise ArgumentError(
            f"year must be a year from {FIRST_YEAR} to {last}, a range such as 2015-2019 "
            f"or a list such as 1998,2003; {text!r} is not."
        )
    return int(text)


def parse_years(value: str) -> tuple[int, ...]:
    """'2019' → (2019,); '2015-2017' → (2015, 2016, 2017); '2003,1998' → (1998, 2003)."""
    years: set[int] = set()
    for part in str(value).split(","):
        first, dash, last = part.partition("-")
        if dash:
            start, end = _year(first), _year(last)
            if start > end:
                raise ArgumentError(f"year range {part.strip()!r} runs backwards.")
            years.update(range(start, end + 1))
        else:
            years.add(_year(part))
    return tuple(sorted(years))


def parse_base_url(value: str) -> str:
    parts = urlsplit(str(value).strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ArgumentError(
            f"base_url must be an origin such as http://127.0.0.1:8001, not {value!r}."
        )
    return f"{parts.scheme}://{parts.netloc}"


def same_shop(url: str, origins: tuple[str, ...]) -> bool:
    """Whether url is on one of the shop's origins (the live shop, or base_url)."""
    host = urlsplit(url).netloc.lower()
    return any(host == urlsplit(origin).netloc.lower() for origin in origins)


def parse_mode(value: Any) -> str:
    """'full' (the default) or 'quick'."""
    text = str(value or "full").strip().lower()
    if text not in MODES:
        raise ArgumentError(f"mode must be full or quick, not {value!r}.")
    return text


def parse_refresh(value: Any, sync: str) -> str | None:
    """'spread', 'overdue' or None (not given), for mode=quick only."""
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    if text not in REFRESH_RULES:
        raise ArgumentError(f"refresh must be spread or overdue, not {value!r}.")
    if sync != "quick":
        raise ArgumentError("refresh chooses which pages a quick sync re-reads; add mode=quick.")
    return text


def parse_target(arguments: dict[str, Any], origins: tuple[str, ...]) -> CrawlTarget:
    """Validate year / url / product_id (at most one of them), mode and refresh."""
    chosen = [name for name in ("year", "url", "product_id") if arguments.get(name)]
    if len(chosen) > 1:
        raise ArgumentError(f"give at most one of year, url and product_id, not {chosen}.")
    sync = parse_mode(arguments.get("mode"))
    refresh = parse_refresh(arguments.get("refresh"), sync)
    if sync == "quick" and {"url", "product_id"} & set(chosen):
        raise ArgumentError(
            f"mode=quick reads year listings; it cannot sync one product ({chosen[0]}), "
            "which is always read from its page."
        )
    if "year" in chosen:
        return CrawlTarget(years=parse_years(arguments["year"]), sync=sync, refresh=refresh)
    if "url" in chosen:
        url = str(arguments["url"]).strip()
        if urlsplit(url).scheme not in ("http", "https"):
            raise ArgumentError(f"url must be an http(s) product page URL, not {url!r}.")
        if not same_shop(url, origins):
            raise ArgumentError(
                f"url {url!r} is not on this shop ({', '.join(origins)}); "
                "use the spider of that shop, or set base_url."
            )
        return CrawlTarget(url=url)
    if "product_id" in chosen:
        text = str(arguments["product_id"]).strip()
        if not text.isdigit():
            raise ArgumentError(f"product_id must be a products.id number, not {text!r}.")
        return CrawlTarget(product_id=int(text))
    return CrawlTarget(sync=sync, refresh=refresh)


def parse_run_id(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise ArgumentError(f"run_id must be a crawl_runs.id number, not {text!r}.")
    return int(text)


def unknown_arguments(arguments: dict[str, Any]) -> list[str]:
    return sorted(set(arguments) - set(_KNOWN))
