"""Instructions per worker page, per telemetry variant: the worker's companion of
tests/bench/instructions.py, for the same reason (the CPU figures of two identical workers differ
by as much as the 5 % target on a shared machine; instructions executed do not).

One API (telemetry off, not counted) and one worker per variant, the worker run as ``make
worker`` runs it (``python -m app.worker``) under ``valgrind --tool=callgrind
--instr-atstart=no``, politeness lifted as in the worker phase. After an unmeasured warm-up job,
counting is turned on in every worker, each gets a job of fresh loopback pages (fetch, extract 4
fields over 200 items, store, settle), and each worker's counts are dumped as soon as its job has
ended; instructions per page = the dump's total / the pages done, all threads included.

Variants as for the API: off, metrics only, full with no attempt sampled (ratio 0) and full with
every attempt sampled (ratio 1); ``full10`` = 0.9 x the first + 0.1 x the second. The API's
telemetry is off, so no message carries a parent: each attempt is a root, sampled by the ratio.
The worker's timers that fire every few seconds (queue gauges, metric export, the dispatcher and
reaper) are set to an hour: under valgrind a page takes fifty times longer, and they would land in
every window as they never do per page in real time. The batch processors export by batch size
instead of by timer, for the same reason (``BATCHES``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from tests.bench.client import TERMINAL, done_pages
from tests.bench.context import Bench
from tests.bench.instructions import SAMPLED, UNSAMPLED, available, control, total_instructions
from tests.bench.pair import Pair, run_job, start_pairs
from tests.bench.procs import stop_all
from tests.bench.variants import FULL10, METRICS, NO_POLITENESS, OFF, Variant
from tests.bench.worker_bench import Pages

VARIANTS = (OFF, METRICS, UNSAMPLED, SAMPLED)
PAGES = 12
QUICK_PAGES = 10
WARM_UP_PAGES = 5
QUIET = {
    "TRAWL_QUEUE_STATS_INTERVAL_S": "3600",
    "TRAWL_DISPATCH_INTERVAL_S": "3600",
    "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
}
#: The batch processors export on a timer, and one export costs the same whether it carries one
#: record or ten: about 4.5 M instructions for an OTLP/HTTP POST through ``requests``, 7 % of a
#: worker page's 62 M. A busy worker in real time settles 20 to 70 pages a second, so the 200 ms
#: log delay puts 4 to 14 pages' records in each export, and the 5 s span delay a few hundred
#: pages' spans (up to the 512 of a batch). Under callgrind a page takes 1 to 2 s, so a timer
#: charges each page exports by the wall clock: at 200 ms every record went out alone (+9.3 %
#: over metrics only), and with 5 s delays a slower host counted more exports per page than a
#: faster one (unsampled +1.8 M instructions a page on a Xeon that ran the phase in 120 s
#: against 80 s). So the timers are set to an hour and the batches go out by size, as a busy
#: worker's do: every 8 log records (one a page) and every 64 spans (about five a page when
#: every attempt is sampled), whatever the host's speed.
BATCHES = {
    "OTEL_BLRP_SCHEDULE_DELAY": "3600000",
    "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "8",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
}
READY_S = 600.0
WINDOW_TIMEOUT_S = 900.0


def _dump(out_dir: Path) -> Path:
    dumps = [p for p in out_dir.glob("callgrind.out.*") if p.suffix[1:].isdigit()]
    if len(dumps) != 1:
        raise RuntimeError(f"{out_dir}: {len(dumps)} dumps, not 1")
    return dumps[0]


def run(bench: Bench) -> dict[str, Any]:
    if not available():
        return {"skipped": "valgrind (callgrind) is not installed"}
    pages_per_job = QUICK_PAGES if bench.config.quick else PAGES
    bench.log(f"instructions: {len(VARIANTS)} workers under callgrind, {pages_per_job} pages each")
    started = time.monotonic()
    out_dirs: dict[str, Path] = {}
    for v in VARIANTS:
        d = bench.workdir / "instructions" / f"worker_{v.name}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        out_dirs[v.name] = d

    def wrap(v: Variant) -> list[str]:
        out = out_dirs[v.name] / "callgrind.out"
        return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]

    pairs = start_pairs(
        bench,
        VARIANTS,
        "postgres",
        "wi",
        extra={**NO_POLITENESS, **QUIET, **BATCHES},
        worker_wrap=wrap,
        ready_s=READY_S,
    )
    pages = Pages()
    try:
        for p in pairs:
            run_job(p, pages.take(bench, WARM_UP_PAGES), timeout_s=READY_S, pin=False)
        per = _windows(bench, pairs, pages, pages_per_job, out_dirs)
    finally:
        stop_all([p for pair in pairs for p in pair.procs()])
    per[FULL10.name] = {"page": 0.9 * per[UNSAMPLED.name]["page"] + 0.1 * per[SAMPLED.name]["page"]}
    return {
        "pages": pages_per_job,
        "endpoints": ["page"],
        "per_request": per,
        "seconds": time.monotonic() - started,
    }


def _windows(
    bench: Bench, pairs: list[Pair], pages: Pages, n: int, out_dirs: dict[str, Path]
) -> dict[str, dict[str, float]]:
    """Count every worker over one job each, all at once; dump each when its job ends."""
    jobs: dict[str, str] = {}
    for p in pairs:
        control(p.worker.pid, "-i", "on")
        jobs[p.variant.name] = p.api.submit(pages.take(bench, n))
    per: dict[str, dict[str, float]] = {}
    deadline = time.monotonic() + WINDOW_TIMEOUT_S
    while len(per) < len(pairs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker jobs not done after {WINDOW_TIMEOUT_S:.0f} s")
        for p in pairs:
            name = p.variant.name
            if name in per:
                continue
            job = p.api.job(jobs[name])
            if job["status"] not in TERMINAL:
                continue
            control(p.worker.pid, "-d")
            control(p.worker.pid, "-i", "off")
            done = done_pages(job)
            if done != n:
                raise RuntimeError(f"{name}: {done} of {n} pages done")
            per[name] = {"page": _wait_dump(out_dirs[name]) / done}
        time.sleep(0.5)
    return per


def _wait_dump(out_dir: Path, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            return total_instructions(_dump(out_dir))
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete callgrind dump in {out_dir}")
        time.sleep(0.2)
