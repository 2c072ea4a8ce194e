"""Cost against work: worker CPU, SQL statements and Redis commands per completed page for
jobs of 50, 400 and 2,000 URLs under the default politeness (4 concurrent fetches and 5 starts
a second per domain), on one domain and spread over 50.

Each job is measured in two parts, with the worker pinned to the measured core:

* the **intake**, from the submit until the stream holds no message of the job that the worker
  has not received (Redis' consumer-group lag is 0): every task has been read once, and those
  that must wait for their domain have been deferred to a return time booked for them;
* a **steady** window of up to ``work_window_s`` after it, or until the job ends.

A job that cannot finish by then (a single domain admits 5 pages a second) is cancelled. The
whole figure (both parts) depends on where the window ends; the two parts do not: what a task
waiting for its domain costs is the intake's CPU beyond the pages it completed, per waiting
task, once, and the steady part is what each page costs meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from app.queue import stream_name
from tests.bench.client import TERMINAL, done_pages
from tests.bench.context import Bench
from tests.bench.pair import Pair, idle_cpu, run_job, start_pairs, wait_idle
from tests.bench.procs import stop_all
from tests.bench.services import MEASURED_CORE, OTHER_CORE
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


INTAKE_TIMEOUT_S = 300.0


def _lag(r: redis.Redis, stream: str) -> int:
    """Messages of ``stream`` not yet delivered to its consumer group."""
    groups: list[dict[str, Any]] = r.xinfo_groups(stream)
    return sum(int(g.get("lag") or 0) for g in groups)


def _cpu_s(pair: Pair) -> float:
    return pair.worker.cpu().total


def run_in_parts(bench: Bench, pair: Pair, urls: list[str], window_s: float) -> dict[str, Any]:
    """One job, measured as its intake and a steady window (module docstring)."""
    assert bench.redis is not None
    r = redis.Redis.from_url(bench.redis.url)
    stream = stream_name(pair.prefix)
    job: dict[str, Any] = {}
    pair.worker.pin(MEASURED_CORE)
    try:
        pair.worker.count_start()
        c0, t0 = _cpu_s(pair), time.monotonic()
        job_id = pair.api.submit(urls)
        while True:
            job = pair.api.job(job_id)
            if job["status"] in TERMINAL or _lag(r, stream) == 0:
                break
            if time.monotonic() - t0 > INTAKE_TIMEOUT_S:
                raise TimeoutError(f"job {job_id}: intake not done after {INTAKE_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        c1, t1, pages1 = _cpu_s(pair), time.monotonic(), done_pages(job)
        intake_counts = pair.worker.count_stop()
        pair.worker.count_start()
        while job["status"] not in TERMINAL and time.monotonic() - t1 < window_s:
            time.sleep(0.1)
            job = pair.api.job(job_id)
        c2, t2, pages2 = _cpu_s(pair), time.monotonic(), done_pages(job)
        steady_counts = pair.worker.count_stop()
    finally:
        pair.worker.pin(OTHER_CORE)
        r.close()
    finished = job["status"] in TERMINAL
    if not finished:
        pair.api.cancel(job_id)
        pair.api.wait(job_id, 60)
        wait_idle(pair.worker)  # the cancelled tasks' messages drain before the next job
    steady_pages = pages2 - pages1
    steady = (c2 - c1) / steady_pages if steady_pages > 0 else None
    waiting = len(urls) - pages1
    intake = (
        max(0.0, (c1 - c0) - pages1 * steady) / waiting if steady is not None and waiting else None
    )
    return {
        "job_id": job_id,
        "urls": len(urls),
        "pages": pages2,
        "finished": finished,
        "cpu_s": c2 - c0,
        "wall_s": t2 - t0,
        "cpu_ms_per_page": (c2 - c0) / pages2 * 1000 if pages2 else float("nan"),
        "intake": {"wall_s": t1 - t0, "cpu_s": c1 - c0, "pages": pages1, "counts": intake_counts},
        "steady": {"wall_s": t2 - t1, "cpu_s": c2 - c1, "pages": steady_pages},
        "steady_ms_per_page": steady * 1000 if steady is not None else None,
        # the intake's CPU beyond its completed pages (each at the steady cost), per task that
        # was still waiting at its end: what waiting for the domain cost each, once
        "intake_ms_per_waiting_task": intake * 1000 if intake is not None else None,
        "counts": _sum_counts(intake_counts, steady_counts),
    }


def _sum_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for counts in (a, b):
        for kind, values in counts.items():
            if isinstance(values, dict):
                into = out.setdefault(kind, {})
                for k, v in values.items():
                    into[k] = into.get(k, 0) + v
    return out


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
                r = run_in_parts(bench, pair, urls_for(bench, pages, n, spread), cfg.work_window_s)
                counts = r.pop("counts")
                done = max(r["pages"], 1)
                sql = counts.get("sql", {})
                red = counts.get("redis", {})
                r.update(
                    domains=DOMAINS if spread else 1,
                    sql_per_page=sum(sql.values()) / done,
                    redis_per_page=sum(red.values()) / done,
                    sql=dict(sql),
                    redis=dict(red),
                    log_records=dict(counts.get("log_records", {})),
                )
                rows.append(r)
    finally:
        stop_all(pair.procs())
    return {"rows": rows, "idle_core_share": idle, "window_s": cfg.work_window_s}
