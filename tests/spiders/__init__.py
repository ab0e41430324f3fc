"""Spiders for tests only, loaded with `-s SPIDER_MODULES=tests.spiders`."""
