"""A local replica of the three shops our spiders crawl, written from vendor-sites.md.

hookedonhallmark.com (3dcart), ornament-shop.com (BigCommerce) and hallmarkornaments.com
(3dcart) each on their own origin, with catalogs generated from a seed. See README.md.
"""
