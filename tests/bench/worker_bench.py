"""Worker CPU per completed page, per telemetry variant, against Scrapy on the same pages.

One API + worker pair per variant (own database and queue prefix), politeness lifted so the
worker sets the pace. Round by round the variants and Scrapy take turns (rotated order); each
processes a job of fresh pages from the loopback site (fetch, extract 4 fields over 200 items,
store, settle) with its process pinned to core 0.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench import procfs, profile
from tests.bench.context import Bench
from tests.bench.pair import Pair, idle_cpu, restart_workers, run_job, start_pairs
from tests.bench.procs import ROOT, stop_all
from tests.bench.services import MEASURED_CORE
from tests.bench.stats import percentile, rotate
from tests.bench.variants import FULL, FULL10, METRICS, NO_POLITENESS, OFF, WORKER_VARIANTS

SCRAPY = "scrapy"
LOG_FLUSH_WAIT_S = 1.6  # the SDK's log batch delay is 1 s


class Pages:
    """Fresh page numbers for every job (no cache anywhere helps a later job)."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, bench: Bench, n: int, host: str = "127.0.0.1") -> list[str]:
        first, self.next = self.next, self.next + n
        return [bench.site_url(f"/p/{i}", host) for i in range(first, first + n)]


def run_scrapy(bench: Bench, urls: list[str], tag: str) -> dict[str, Any]:
    d = bench.workdir / "scrapy"
    d.mkdir(parents=True, exist_ok=True)
    urls_file = d / f"{tag}.urls"
    urls_file.write_text("\n".join(urls))
    out = d / f"{tag}.json"
    core0 = procfs.core_times(int(MEASURED_CORE))
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(
        [
            "taskset",
            "-c",
            MEASURED_CORE,
            sys.executable,
            "-m",
            "tests.bench.scrapy_run",
            "--urls",
            str(urls_file),
            "--out",
            str(out),
            "--concurrency",
            "16",
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
        stdout=(d / f"{tag}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wall = time.monotonic() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (children.ru_utime - children0.ru_utime) + (children.ru_stime - children0.ru_stime)
    core = procfs.core_times(int(MEASURED_CORE)) - core0
    r: dict[str, Any] = json.loads(out.read_text())
    r["foreign"] = max(0.0, core.busy - own) / wall
    pages = r["items"]
    r["cpu_ms_per_page"] = r["cpu_s"] / pages * 1000 if pages else float("nan")
    r["pages_per_s_wall"] = pages / r["wall_s"] if r["wall_s"] else float("nan")
    return r


def count_per_page(bench: Bench, pair: Pair, pages: Pages, n: int) -> dict[str, Any]:
    pair.worker.count_start()
    r = run_job(pair, pages.take(bench, n), timeout_s=300, pin=False)
    counts = pair.worker.count_stop()
    done = max(r["pages"], 1)
    return {
        kind: {k: v / done for k, v in values.items()}
        for kind, values in counts.items()
        if isinstance(values, dict)
    }


def log_latency(bench: Bench) -> dict[str, Any]:
    time.sleep(LOG_FLUSH_WAIT_S)
    stats = bench.sink_stats()
    lat = stats["log_latencies_ms"]
    return {"records": len(lat), "latencies_ms": lat}


def profile_worker(bench: Bench, pair: Pair, pages: Pages, out_dir: Path, tag: str) -> str:
    seconds = bench.config.profile_seconds
    out = out_dir / f"{tag}.collapsed.txt"
    n = max(int(seconds * 25), 50)
    spy = profile.record(pair.worker.pid, seconds, out)
    time.sleep(0.3)
    run_job(pair, pages.take(bench, n), timeout_s=300)
    spy.wait(timeout=seconds + 60)
    return profile.finish(
        out, f"py-spy: worker, jobs of {n} loopback pages, {pair.variant.title}, PostgreSQL"
    )


def run(bench: Bench, profile_dir: Path | None) -> dict[str, Any]:
    cfg = bench.config
    bench.log("worker: starting an API and a worker per variant")
    pairs = start_pairs(bench, WORKER_VARIANTS, "postgres", "wk", extra=NO_POLITENESS)
    by_name = {p.variant.name: p for p in pairs}
    names = [*by_name, SCRAPY]
    pages = Pages()
    data: dict[str, Any] = {n: [] for n in names}
    logs: dict[str, list[float]] = {FULL.name: [], FULL10.name: []}
    try:
        bench.log("worker: warm-up jobs")
        for p in pairs:
            run_job(p, pages.take(bench, 30), timeout_s=300, pin=False)
        for r in range(cfg.worker_rounds):
            bench.log(f"worker: round {r + 1}/{cfg.worker_rounds}")
            if r > 0:  # fresh processes each round; their first job is not measured
                restart_workers(bench, pairs, r)
                for p in pairs:  # half the first warm-up: the database is warm by now
                    run_job(p, pages.take(bench, 15), timeout_s=300, pin=False)
            for n in rotate(names, r):
                urls = pages.take(bench, cfg.worker_pages)
                if n == SCRAPY:
                    data[n].append(run_scrapy(bench, urls, f"r{r}"))
                    continue
                if n in logs:
                    bench.sink_reset()
                data[n].append(run_job(by_name[n], urls, timeout_s=600))
                if n in logs:
                    logs[n].extend(log_latency(bench)["latencies_ms"])
        bench.log("worker: idle CPU, counts per page")
        idle = idle_cpu(pairs, 3.0 if cfg.quick else 6.0)
        counts = {p.variant.name: count_per_page(bench, p, pages, 40) for p in pairs}
        profiles: dict[str, str] = {}
        if profile_dir is not None:
            for v in (OFF, METRICS):
                bench.log(f"worker: py-spy, {v.name}")
                tag = f"worker-page-{v.name}"
                profiles[tag] = profile_worker(bench, by_name[v.name], pages, profile_dir, tag)
    finally:
        stop_all([p for pair in pairs for p in pair.procs()])
    return {
        "runs": data,
        "idle_core_share": idle,
        "counts": counts,
        "log_latency_ms": {
            k: {
                "records": len(v),
                "p50": percentile(v, 50),
                "p99": percentile(v, 99),
                "max": max(v) if v else float("nan"),
            }
            for k, v in logs.items()
        },
        "profiles": profiles,
    }
