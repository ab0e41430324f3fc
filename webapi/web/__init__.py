"""The web view: server-rendered pages for collectors, from the same app as the API.

Search (`/`), one SKU across the shops with its price chart (`/sku/<sku>`, and
`/products/<id>`), recent price drops and restocks (`/changes`) and crawl status (`/runs`).
Jinja templates, one style sheet, no script and no CDN: every page works with JavaScript off.
Charts are SVG drawn on the server (`charts`). Data is read like the API reads it (the
SELECT-only role, `webapi.db.reader`), through the API's own filters and history queries, and
the few queries of its own (`queries`) are written so the API can use them too.

The pages are public unless `web_requires_key` is on; the JSON API always needs a key.
"""

from webapi.web.views import blueprint

__all__ = ["blueprint"]
