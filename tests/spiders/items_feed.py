"""A spider that yields generated items without fetching anything, to test the pipelines.

It is named after a real vendor because crawl runs and products belong to vendors. Arguments:
count (items), bad (also yield three invalid items), pause_after + pause_dir (after that many
items, create <pause_dir>/paused and wait until <pause_dir>/resume exists), price (base price).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import scrapy

from christmas_spiders.items import ProductItem


def feed_item(number: int, price: Decimal) -> ProductItem:
    return ProductItem(
        vendor="ornament_shop_com",
        vendor_product_id=str(1000 + number),
        sku=f" qx{number:04d} ",
        name=f"2019  Frosty Friends {number}th in Series &amp; more",
        price=f"${price + number:,.2f}",
        regular_price=None,
        currency="USD",
        availability="In Stock - Usually ships in 1 business day",
        availability_text="In Stock - Usually ships in 1 business day",
        release_year=2019,
        brand="Hallmark",
        link=f"http://127.0.0.1:9/2019-frosty-friends-{number}/",
        image_url=None,
        series=None,
        series_number=None,
        artist="NA",
    )


class ItemsFeedSpider(scrapy.Spider):
    name = "ornament_shop_com"

    def __init__(self, count: str = "10", bad: str = "", price: str = "10", **kwargs: Any):
        super().__init__(**kwargs)
        self.count = int(count)
        self.bad = bool(bad)
        self.price = Decimal(price)
        self.run_arguments = {"count": count}

    async def start(self) -> AsyncIterator[Any]:
        pause_after = int(getattr(self, "pause_after", -1))
        for number in range(self.count):
            if number == pause_after:
                await self._pause(Path(self.pause_dir))
            yield feed_item(number, self.price)
        if self.bad:
            yield {**feed_item(900, self.price), "name": "  "}
            yield {**feed_item(901, self.price), "availability": "Ask us", "availability_text": ""}
            yield {**feed_item(902, self.price), "release_year": 1900}

    async def _pause(self, folder: Path) -> None:
        (folder / "paused").touch()
        while not (folder / "resume").exists():
            await asyncio.sleep(0.05)
