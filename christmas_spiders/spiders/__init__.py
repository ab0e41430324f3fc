"""One spider per shop; Scrapy's spider loader finds them here."""
