"""Pure page parsers, one module per shop: a parsel Selector and the page URL in, data out.

No I/O and no Scrapy here, so every parser is tested on saved pages alone. A product parser
returns a ``ProductPage``: the fields of vendor-sites.md §C2 (without ``vendor``; release_year
as the page states it), the problems it noticed (structured data broken or disagreeing with the
visible markup), or why the page holds no product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    code: str  # short, becomes a stats key: pages/problems/<code>
    message: str


@dataclass
class ProductPage:
    fields: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)
    skipped: str | None = None  # why fields is None: "no_product" (soft 404…), "no_name"

    @classmethod
    def skip(cls, reason: str, problems: list[Problem] | None = None) -> ProductPage:
        return cls(fields=None, problems=problems or [], skipped=reason)
