"""The quick sync (``scrapy crawl <vendor> -a mode=quick``, issue #16): the listings first.

A full sync reads every product page. A quick sync reads the year listings, compares each tile
with the stored product, and reads a product page only when the product is new, its tile shows
a change, its stored page is due for a refresh, or its tile cannot be read; the others are
marked synced without a request. Products are always stored from their own page.

* ``rules`` — the decision and the refresh plan, pure;
* ``sync`` — ``QuickSync``, the spider's helper at work, and the summary lines;
* ``gate`` — holds the crawl's requests until the stored products are loaded.

See docs/spiders.md ("Quick sync").
"""
