"""Trawl: the scraping service (API, queue, workers, storage)."""

__version__ = "0.1.0"
