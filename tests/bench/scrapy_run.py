"""The reference crawler: Scrapy on the same pages with the same extraction.

``python -m tests.bench.scrapy_run --urls FILE --out RESULT.json [--concurrency 16]``

One spider fetches every URL (16 concurrent requests, as the worker's default concurrency),
extracts the same four fields with the same CSS selectors (parsel, which Trawl uses too) and
writes each item to a JSON-lines feed. The CPU time of this process is read from
``/proc/self/stat`` when the spider opens and when it closes (interpreter and Scrapy start-up
excluded, as the worker's start-up is).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import scrapy
from scrapy import signals
from scrapy.crawler import CrawlerProcess

from tests.bench.procfs import cpu_times


class PagesSpider(scrapy.Spider):
    name = "bench-pages"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = urls
        self.marks: dict[str, float] = {}

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> PagesSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.opened, signal=signals.spider_opened)
        crawler.signals.connect(spider.closed_, signal=signals.spider_closed)
        return spider

    def opened(self, spider: scrapy.Spider) -> None:
        self.marks["cpu0"] = cpu_times_self()
        self.marks["t0"] = time.monotonic()

    def closed_(self, spider: scrapy.Spider) -> None:
        self.marks["cpu1"] = cpu_times_self()
        self.marks["t1"] = time.monotonic()

    async def start(self) -> Any:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, dont_filter=True)

    def parse(self, response: Any) -> Any:
        items = response.css("li.item")
        yield {
            "url": response.url,
            "title": response.css("title::text").get(),
            "names": [t.strip() for t in items.css("span.name::text").getall()],
            "prices": [t.strip() for t in items.css("span.price::text").getall()],
            "links": items.css("a::attr(href)").getall(),
        }


def cpu_times_self() -> float:
    import os

    return cpu_times(os.getpid()).total


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.scrapy_run")
    parser.add_argument("--urls", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    urls = [u for u in args.urls.read_text().splitlines() if u.strip()]
    feed = args.out.with_suffix(".items.jsonl")
    process = CrawlerProcess(
        settings={
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "ROBOTSTXT_OBEY": False,
            "COOKIES_ENABLED": False,
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "DOWNLOAD_DELAY": 0,
            "RETRY_ENABLED": False,
            "FEEDS": {str(feed): {"format": "jsonlines", "overwrite": True}},
        }
    )
    crawler = process.create_crawler(PagesSpider)
    process.crawl(crawler, urls=urls)
    process.start()
    spider = crawler.spider
    assert spider is not None
    marks = spider.marks
    stats = crawler.stats.get_stats() if crawler.stats else {}
    items = sum(1 for _ in feed.open()) if feed.exists() else 0
    result = {
        "pages": len(urls),
        "items": items,
        "responses_200": int(stats.get("downloader/response_status_count/200", 0)),
        "cpu_s": marks["cpu1"] - marks["cpu0"],
        "wall_s": marks["t1"] - marks["t0"],
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
