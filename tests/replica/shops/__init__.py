"""One renderer per shop; `SHOP_CLASSES` maps a vendor id to its renderer."""

from __future__ import annotations

from ..models import HO, HOOH, OS
from .base import Shop
from .ho import HoShop
from .hooh import HoohShop
from .ornament_shop import OrnamentShop

SHOP_CLASSES: dict[str, type[Shop]] = {HOOH: HoohShop, OS: OrnamentShop, HO: HoShop}

__all__ = ["SHOP_CLASSES", "HoShop", "HoohShop", "OrnamentShop", "Shop"]
