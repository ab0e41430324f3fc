"""The three shops we track. The vendor id is the spider name and the `vendors.id` column."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vendor:
    id: str
    display_name: str
    base_url: str  # the live shop's origin; configuration or `-a base_url=` may replace it


VENDORS: dict[str, Vendor] = {
    vendor.id: vendor
    for vendor in (
        Vendor("hookedonhallmark_com", "Hooked on Hallmark", "https://www.hookedonhallmark.com"),
        Vendor("ornament_shop_com", "Ornament Shop", "https://www.ornament-shop.com"),
        # The shop calls itself The Ornament Factory: its address says it is hallmarkornaments.com.
        Vendor(
            "hallmark_ornaments_com",
            "The Ornament Factory (hallmarkornaments.com)",
            "https://www.hallmarkornaments.com",
        ),
    )
}
