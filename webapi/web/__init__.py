"""The web view: server-rendered pages for collectors, from the same app as the API.

Search (`/`: one row per ornament, each shop's best offer boxed and without its box), one
ornament with every offer and its price chart (`/ornaments/<id>`; `/sku/<sku>` in any SKU form
and `/products/<id>` lead there), series a collector works through (`/series`,
`/series/<name>`), recent price drops and restocks (`/changes`) and crawl status (`/runs`).
Jinja templates, one style sheet, no script and no CDN: every page works with JavaScript off.
Charts are SVG drawn on the server (`charts`). Data is read like the API reads it (the
SELECT-only role, `webapi.db.reader`), through the API's own filters and history queries, and
the few queries of its own (`queries`) are written so the API can use them too.

The pages are public unless `web_requires_key` is on; the JSON API always needs a key.
"""

from webapi.web import market_pages, ornament_pages  # noqa: F401  (their pages join the blueprint)
from webapi.web.views import blueprint

__all__ = ["blueprint"]
