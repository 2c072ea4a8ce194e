"""An API and a worker on one database and one queue prefix: the API (telemetry off, off the
measured core) only submits jobs and answers polls; the worker is the process under test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.bench import procfs
from tests.bench.client import Api, done_pages, new_key
from tests.bench.context import Bench
from tests.bench.procs import Proc, start_api, start_worker, stop_all, wait_api_ready, wait_log_line
from tests.bench.services import MEASURED_CORE, OTHER_CORE
from tests.bench.variants import OFF, Variant


@dataclass
class Pair:
    variant: Variant
    api_proc: Proc
    worker: Proc
    api: Api
    prefix: str  # the pair's Redis key prefix (its task stream is ``<prefix>:tasks``)

    def procs(self) -> list[Proc]:
        return [self.api_proc, self.worker]


def start_pairs(
    bench: Bench,
    variants: tuple[Variant, ...],
    db: str,
    tag: str,
    extra: dict[str, str] | None = None,
    api_extra: dict[str, str] | None = None,
    api_variant: Variant = OFF,
    worker_wrap: Callable[[Variant], list[str]] | None = None,
    ready_s: float = 120.0,
) -> list[Pair]:
    started: list[tuple[Variant, Proc, Proc, str]] = []
    workdir = bench.workdir / "procs"
    try:
        for v in variants:
            label = f"{tag}_{v.name}"
            url = bench.database(db, label)
            prefix = f"bench-{label}-{uuid.uuid4().hex[:4]}"
            api_env = bench.env(
                api_variant, url, label, {**(extra or {}), **(api_extra or {})}, prefix
            )
            # the worker may not migrate: the API does it at start; the worker starts after
            api = start_api(f"{label}_api", api_env, workdir)
            wait_api_ready(api, 120)
            worker_env = bench.env(v, url, label, extra, prefix)
            wrap = worker_wrap(v) if worker_wrap else None
            worker = start_worker(f"{label}_worker", worker_env, workdir, wrap)
            started.append((v, api, worker, prefix))
        pairs = []
        for v, api, worker, prefix in started:
            wait_log_line(worker, "worker started", ready_s)
            api.pin(OTHER_CORE)
            worker.pin(OTHER_CORE)
            pairs.append(Pair(v, api, worker, new_key(api.base_url), prefix))
        return pairs
    except Exception:
        stop_all([p for _, a, w, _ in started for p in (a, w)])
        raise


def restart_workers(bench: Bench, pairs: list[Pair], generation: int) -> None:
    """A new worker process for every pair, with the same environment, all at once. What one
    process differs from another by (heap layout, hash seed, which caches warmed first) is then
    spread over the rounds instead of staying with one variant for the whole run."""
    stop_all([p.worker for p in pairs])
    workdir = bench.workdir / "procs"
    for p in pairs:
        base = p.worker.name.split("#", 1)[0]
        p.worker = start_worker(f"{base}#{generation}", p.worker.env, workdir)
    for p in pairs:
        wait_log_line(p.worker, "worker started", 120)
        p.worker.pin(OTHER_CORE)


def run_job(
    pair: Pair,
    urls: list[str],
    *,
    timeout_s: float,
    window_s: float | None = None,
    pin: bool = True,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Submit one job and measure the worker's CPU until the job ends, or until ``window_s``
    (then the job is cancelled and the pages done so far count)."""
    if pin:
        pair.worker.pin(MEASURED_CORE)
    try:
        core0 = procfs.core_times(int(MEASURED_CORE))
        c0 = pair.worker.cpu()
        t0 = time.monotonic()
        job_id = pair.api.submit(urls, **(options or {}))
        limit = window_s if window_s is not None else timeout_s
        job: dict[str, Any] = {}
        while True:
            job = pair.api.job(job_id)
            elapsed = time.monotonic() - t0
            if job["status"] in ("completed", "failed", "cancelled") or elapsed >= limit:
                break
            time.sleep(0.1)
        c1 = pair.worker.cpu()
        t1 = time.monotonic()
        core = procfs.core_times(int(MEASURED_CORE)) - core0
    finally:
        if pin:
            pair.worker.pin(OTHER_CORE)
    finished = job["status"] in ("completed", "failed", "cancelled")
    if not finished:
        if window_s is None:
            raise TimeoutError(f"job {job_id} not done after {timeout_s:.0f}s: {job['progress']}")
        pair.api.cancel(job_id)
        pair.api.wait(job_id, 60)
        # the stream still holds the cancelled tasks' messages: let the worker drain them
        # before anything else is measured
        wait_idle(pair.worker)
    pages = done_pages(job)
    used = c1 - c0
    return {
        "job_id": job_id,
        "urls": len(urls),
        "pages": pages,
        "succeeded": int(job["progress"]["succeeded"]),
        "finished": finished,
        "cpu_s": used.total,
        "wall_s": t1 - t0,
        "cpu_ms_per_page": used.total / pages * 1000 if pages else float("nan"),
        "pages_per_s_wall": pages / (t1 - t0) if t1 > t0 else float("nan"),
        # other processes' share of the measured core meanwhile (meaningful when pinned)
        "foreign": max(0.0, core.busy - used.total) / (t1 - t0) if pin else float("nan"),
    }


def wait_idle(
    proc: Proc, share: float = 0.05, window_s: float = 1.0, timeout_s: float = 120
) -> None:
    """Until ``proc`` uses less than ``share`` of a core over ``window_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c0 = proc.cpu()
        time.sleep(window_s)
        if (proc.cpu() - c0).total / window_s < share:
            return


def idle_cpu(pairs: list[Pair], seconds: float) -> dict[str, float]:
    """Share of a core each worker uses while it has nothing to do (all measured at once)."""
    c0 = {p.variant.name: p.worker.cpu() for p in pairs}
    time.sleep(seconds)
    return {p.variant.name: (p.worker.cpu() - c0[p.variant.name]).total / seconds for p in pairs}
