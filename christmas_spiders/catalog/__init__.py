"""Ornaments, not listings (issue #15): which listings of the shops are one Keepsake ornament.

rules.py reads item numbers, conditions, years, series numbers, kind flags and comparable names
from one listing; linker.py links listings to ornaments; measure.py scores a linking against
the truth; `python -m christmas_spiders.catalog link` links crawled items offline.
"""
