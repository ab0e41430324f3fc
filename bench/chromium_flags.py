"""Bench-only: run a crawl with extra Chromium flags, to measure a proposed change to
``christmas_spiders.rendering.CHROMIUM_FLAGS`` without editing it.

An extension (enabled through `settings()`, which keeps the project's own extensions) appends the
flags of ``BENCH_CHROMIUM_FLAGS`` to the module's tuple when the crawler is built, before the
first browser starts. Kept free of heavy imports: it is loaded into the measured crawler.
"""

from __future__ import annotations

import json

SETTING = "BENCH_CHROMIUM_FLAGS"


class ExtraChromiumFlags:
    @classmethod
    def from_crawler(cls, crawler):
        from christmas_spiders import rendering

        flags = [flag for flag in crawler.settings.getlist(SETTING) if flag]
        rendering.CHROMIUM_FLAGS = (*rendering.CHROMIUM_FLAGS, *flags)
        return cls()


def settings(*flags: str) -> dict[str, str]:
    """`-s` settings for a crawl whose browsers get `flags` too."""
    from christmas_spiders.settings import EXTENSIONS

    extensions = {**EXTENSIONS, "bench.chromium_flags.ExtraChromiumFlags": 0}
    return {"EXTENSIONS": json.dumps(extensions), SETTING: ",".join(flags)}
