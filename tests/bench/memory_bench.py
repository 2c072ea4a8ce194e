"""Memory: the RSS of the API and a worker before and after a cardinality attack (twice: the
second attack shows whether growth is bounded), then during a shortened soak at a fixed rate,
with the slope of RSS over time. Both processes run full telemetry at the default sampling, the
setting that keeps the most in memory.

The attack, on the API: unmatched random paths, random methods, random job ids, invalid bodies
and queries whose error messages carry random text, random bearer tokens, random ``Host``
headers. On the worker: a job whose URLs go to many distinct hosts that refuse connections
(distinct domains and error messages) and to random error statuses on 50 site domains.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import httpx

from tests.bench.client import Api
from tests.bench.context import Bench
from tests.bench.pair import Pair, start_pairs
from tests.bench.procs import stop_all
from tests.bench.services import free_port
from tests.bench.site import FIELDS, domain_hosts
from tests.bench.stats import slope
from tests.bench.variants import FULL
from tests.bench.worker_bench import Pages

MIB = 1024 * 1024
CONCURRENCY = 8


def _tok(rnd: random.Random) -> str:
    return f"{rnd.getrandbits(64):016x}"


def attack_request(i: int, rnd: random.Random, job_id: str, key: str) -> dict[str, Any]:
    """One hostile or odd request (kwargs for ``httpx.AsyncClient.request``)."""
    t = _tok(rnd)
    auth = {"authorization": f"Bearer {key}"}
    kinds: list[dict[str, Any]] = [
        {"method": "GET", "url": f"/{t}/{_tok(rnd)}"},
        {"method": "X" + t.upper()[:10], "url": "/v1/jobs", "headers": auth},
        {"method": "GET", "url": f"/v1/jobs/job_{t}", "headers": auth},
        {
            "method": "POST",
            "url": "/v1/jobs",
            "headers": auth,
            "json": {
                "urls": [f"http://h{t}.example/{t}"],
                "extract": {"fields": {"f": {"selector": "[[" + t}}},
            },
        },
        {"method": "GET", "url": "/v1/jobs", "headers": {"authorization": f"Bearer {t}"}},
        {"method": "GET", "url": "/v1/jobs", "headers": {**auth, "host": f"h{t}.example"}},
        {"method": "GET", "url": f"/v1/jobs?status={t}", "headers": auth},
        {"method": "GET", "url": f"/v1/jobs/{job_id}/results?cursor={t}", "headers": auth},
    ]
    return kinds[i % len(kinds)]


async def api_attack(api: Api, job_id: str, n: int, seed: int) -> dict[str, int]:
    rnd = random.Random(seed)
    statuses: dict[str, int] = {}
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as c:

        async def one(i: int) -> None:
            async with sem:
                try:
                    r = await c.request(**attack_request(i, rnd, job_id, api.key))
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                statuses[code] = statuses.get(code, 0) + 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return statuses


def worker_attack_urls(bench: Bench, n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    closed = free_port()
    hosts = domain_hosts(50)
    urls = []
    for i in range(n):
        t = _tok(rnd)
        if i % 2:
            a, b, c = rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)
            urls.append(f"http://127.{64 + a % 64}.{b}.{c}:{closed}/{t}")
        else:
            code = rnd.randrange(400, 600)
            urls.append(bench.site_url(f"/status/{code}/{t}", hosts[i % len(hosts)]))
    return urls


def rss(pair: Pair) -> dict[str, float]:
    return {"api": pair.api_proc.rss() / MIB, "worker": pair.worker.rss() / MIB}


def attack(bench: Bench, pair: Pair, job_id: str, seed: int) -> dict[str, Any]:
    cfg = bench.config
    statuses = asyncio.run(api_attack(pair.api, job_id, cfg.attack_requests, seed))
    urls = worker_attack_urls(bench, cfg.attack_hosts, seed)
    attack_job = pair.api.submit(urls, max_retries=0, timeout_s=5)
    final = pair.api.wait(attack_job, 300)
    return {"api_statuses": statuses, "worker_job": final["progress"]}


class Soak(threading.Thread):
    """Fixed-rate traffic: 10 reads a second (job, list, readiness) and a 3-URL job a second."""

    def __init__(self, bench: Bench, pair: Pair, job_id: str, pages: Pages, seconds: float) -> None:
        super().__init__(daemon=True)
        self.bench, self.pair, self.job_id, self.pages = bench, pair, job_id, pages
        self.seconds = seconds
        self.requests = 0
        self.jobs = 0
        self.errors = 0

    def run(self) -> None:
        hosts = domain_hosts(50)
        reads = [f"/v1/jobs/{self.job_id}", "/v1/jobs", "/health/ready"]
        start = time.monotonic()
        tick = 0
        with self.pair.api.client() as c:
            while (now := time.monotonic()) - start < self.seconds:
                try:
                    if tick % 10 == 0:
                        urls = [
                            u.replace("127.0.0.1", hosts[(tick + k) % 50], 1)
                            for k, u in enumerate(self.pages.take(self.bench, 3))
                        ]
                        body = {"urls": urls, "extract": {"fields": FIELDS}}
                        c.post("/v1/jobs", json=body).raise_for_status()
                        self.jobs += 1
                    else:
                        c.get(reads[tick % 3]).raise_for_status()
                    self.requests += 1
                except httpx.HTTPError:
                    self.errors += 1
                tick += 1
                time.sleep(max(0.0, start + tick * 0.1 - now))


def soak(bench: Bench, pair: Pair, job_id: str, pages: Pages) -> dict[str, Any]:
    seconds = bench.config.soak_seconds
    load = Soak(bench, pair, job_id, pages, seconds)
    samples: list[tuple[float, dict[str, float]]] = []
    t0 = time.monotonic()
    load.start()
    while load.is_alive():
        samples.append((time.monotonic() - t0, rss(pair)))
        time.sleep(2.0)
    skip = len(samples) // 5  # the first fifth is warm-up
    xs = [t for t, _ in samples[skip:]]
    out: dict[str, Any] = {
        "seconds": seconds,
        "requests": load.requests,
        "jobs": load.jobs,
        "errors": load.errors,
        "samples": [{"t": t, **r} for t, r in samples],
    }
    for proc in ("api", "worker"):
        ys = [r[proc] for _, r in samples[skip:]]
        per_s = slope(xs, ys)
        out[f"{proc}_slope_mib_per_h"] = per_s * 3600
    return out


def run(bench: Bench) -> dict[str, Any]:
    bench.log("memory: starting an API and a worker (full telemetry, default sampling)")
    (pair,) = start_pairs(bench, (FULL,), "postgres", "mem", api_variant=FULL)
    pages = Pages()
    try:
        job_id = pair.api.submit(pages.take(bench, 50))
        pair.api.wait(job_id, 300)
        time.sleep(2.0)
        before = rss(pair)
        bench.log("memory: cardinality attack 1")
        first = attack(bench, pair, job_id, seed=1)
        time.sleep(2.0)
        after1 = rss(pair)
        bench.log("memory: cardinality attack 2")
        second = attack(bench, pair, job_id, seed=2)
        time.sleep(2.0)
        after2 = rss(pair)
        bench.log(f"memory: soak for {bench.config.soak_seconds:.0f} s")
        soaked = soak(bench, pair, job_id, pages)
        end = rss(pair)
    finally:
        stop_all(pair.procs())
    return {
        "rss_mib": {"before": before, "after_attack_1": after1, "after_attack_2": after2,
                    "after_soak": end},
        "attacks": [first, second],
        "attack_requests": bench.config.attack_requests,
        "attack_urls": bench.config.attack_hosts,
        "soak": soaked,
    }  # fmt: skip
