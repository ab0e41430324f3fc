"""What a spider yields: one ProductItem per product page (vendor-sites.md §C2)."""

from __future__ import annotations

import scrapy


class ProductItem(scrapy.Item):
    vendor = scrapy.Field()  # the spider name
    vendor_product_id = scrapy.Field()  # 3dcart catalogid / BigCommerce product_id, or None
    sku = scrapy.Field()  # Hallmark SKU as shown, trimmed and upper-cased, or None
    name = scrapy.Field()
    price = scrapy.Field()  # Decimal: what a buyer pays now, or None
    regular_price = scrapy.Field()  # Decimal: the pre-sale price when on sale, else None
    currency = scrapy.Field()  # ISO code, "USD"
    availability = scrapy.Field()  # "available", "preorder" or "unavailable"
    availability_text = scrapy.Field()  # the shop's own words
    release_year = scrapy.Field()  # int
    brand = scrapy.Field()
    link = scrapy.Field()  # canonical product URL
    image_url = scrapy.Field()
    series = scrapy.Field()
    series_number = scrapy.Field()
    artist = scrapy.Field()
