"""The names every benchmark script shares: the project's folder, the three shops (full id and the
short name the tables print), a megabyte, and the crawl settings that turn politeness off. A leaf:
it imports nothing of ours, so every other bench module may import it.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOOH, OS, HO = "hookedonhallmark_com", "ornament_shop_com", "hallmark_ornaments_com"
VENDORS = (HOOH, OS, HO)
SHORT = {HOOH: "HooH", OS: "OS", HO: "HO"}
MB = 1024 * 1024
# Politeness off: the crawler, not the delay, is what a figure measures (figures 1, 2, 8).
UNTHROTTLED = {
    "AUTOTHROTTLE_ENABLED": "0",
    "DOWNLOAD_DELAY": "0",
    "CONCURRENT_REQUESTS": "16",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
}
