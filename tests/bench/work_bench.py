"""Cost against work: worker CPU, SQL statements and Redis commands per completed page for
jobs of 50, 400 and 2,000 URLs under the default politeness (4 concurrent fetches and 5 starts
a second per domain), on one domain and spread over 50.

A job that cannot finish within the window (a single domain admits 5 pages a second) is
measured over the window and then cancelled: the figure is the cost per page done while the
rest of the job waits for its domain, which is what the size changes.
"""

from __future__ import annotations

import time
from typing import Any

from tests.bench.context import Bench
from tests.bench.pair import idle_cpu, run_job, start_pairs, wait_idle
from tests.bench.procs import stop_all
from tests.bench.site import domain_hosts
from tests.bench.variants import OFF
from tests.bench.worker_bench import Pages

DOMAINS = 50


def urls_for(bench: Bench, pages: Pages, n: int, spread: bool) -> list[str]:
    if not spread:
        return pages.take(bench, n)
    hosts = domain_hosts(DOMAINS)
    numbers = pages.take(bench, n)
    return [u.replace("127.0.0.1", hosts[i % DOMAINS], 1) for i, u in enumerate(numbers)]


def run(bench: Bench) -> dict[str, Any]:
    cfg = bench.config
    bench.log("work: starting an API and a worker (default politeness, telemetry off)")
    # the API admits 1,000 URLs per job by default; the 2,000-URL job needs the limit raised
    limit = {"TRAWL_MAX_URLS_PER_JOB": str(max(cfg.job_sizes))}
    (pair,) = start_pairs(bench, (OFF,), "postgres", "work", api_extra=limit)
    pages = Pages()
    rows: list[dict[str, Any]] = []
    try:
        run_job(pair, pages.take(bench, 20), timeout_s=120, pin=False)  # warm-up
        time.sleep(2.0)
        idle = idle_cpu([pair], 3.0 if cfg.quick else 5.0)[OFF.name]
        for spread in (False, True):
            for n in cfg.job_sizes:
                where = f"{DOMAINS} domains" if spread else "1 domain"
                bench.log(f"work: {n} URLs on {where}")
                pair.worker.count_start()
                r = run_job(
                    pair,
                    urls_for(bench, pages, n, spread),
                    timeout_s=600,
                    window_s=cfg.work_window_s,
                )
                counts = pair.worker.count_stop()
                done = max(r["pages"], 1)
                sql = counts.get("sql", {})
                redis = counts.get("redis", {})
                r.update(
                    domains=DOMAINS if spread else 1,
                    sql_per_page=sum(sql.values()) / done,
                    redis_per_page=sum(redis.values()) / done,
                    sql=dict(sql),
                    redis=dict(redis),
                    log_records=dict(counts.get("log_records", {})),
                )
                rows.append(r)
                wait_idle(pair.worker)  # the last job's messages drain before the next
    finally:
        stop_all(pair.procs())
    return {"rows": rows, "idle_core_share": idle, "window_s": cfg.work_window_s}
