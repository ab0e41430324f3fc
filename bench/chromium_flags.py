"""Bench-only: run a crawl without some of the project's Chromium flags, to measure what a flag
of ``christmas_spiders.rendering.CHROMIUM_FLAGS`` buys (the baseline of figure 8's HO rows).

An extension (enabled through `settings()`, which keeps the project's own extensions) removes
the flags of ``BENCH_CHROMIUM_WITHOUT`` from the module's tuple when the crawler is built, before
the first browser starts. Kept free of heavy imports: it is loaded into the measured crawler.
"""

from __future__ import annotations

import json

SETTING = "BENCH_CHROMIUM_WITHOUT"


class WithoutChromiumFlags:
    @classmethod
    def from_crawler(cls, crawler):
        from christmas_spiders import rendering

        dropped = set(crawler.settings.getlist(SETTING))
        rendering.CHROMIUM_FLAGS = tuple(f for f in rendering.CHROMIUM_FLAGS if f not in dropped)
        return cls()


def settings(*flags: str) -> dict[str, str]:
    """`-s` settings for a crawl whose browsers start without `flags`."""
    from christmas_spiders.settings import EXTENSIONS

    extensions = {**EXTENSIONS, "bench.chromium_flags.WithoutChromiumFlags": 0}
    return {"EXTENSIONS": json.dumps(extensions), SETTING: ",".join(flags)}
