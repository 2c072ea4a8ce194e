"""Instructions per API request, per telemetry variant: the low-noise companion of the CPU
figures.

CPU time per request on a shared machine moves by a few percent between two identical
processes (the A/A control), as much as the 5 % target. Instructions executed do not depend on
the machine's load, only on the process (their own A/A control, ``off2``, is about a percent or
two: see :data:`VARIANTS`). Each variant's app (tests/bench/inproc.py, the app and its lifespan
called through ASGI, no server) runs under ``valgrind --tool=callgrind``, counting is turned on
for N requests of one endpoint and the total is dumped; instructions per request = the dump's
total / N, all threads included (the exporters' too). Instructions are not time (a cache miss
costs more than an add), so this figure ranks and explains; the CPU figures judge, and where
they cannot tell an overhead from the target (tests/bench/report.py), this figure does.

The app's timers (health refresh, queue gauges, error flush, metric export) are set to an hour in
these processes: under valgrind a request takes twenty times longer, and a timer that fires once
per ten thousand requests in real time would land in every window. So are the span and log batch
delays: the app exports its spans and log records at the end of each window, inside it
(tests/bench/inproc.py), so that each window counts its own requests' export once. A timed batch
landed in a window or not by chance, which moved a sampled status read by 1.3 M instructions
between two runs. The per-batch part of the export is still overweighted (a batch of a few dozen
requests, where a loaded server batches hundreds).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.context import Bench
from tests.bench.procs import ROOT, clean_environ
from tests.bench.variants import FULL10, METRICS, OFF, OFF2, PFI, Variant

#: Full telemetry at 10 % is measured as its two kinds of request, so that the figure does not
#: depend on how many of a few dozen requests happened to be sampled: every request not
#: sampled (ratio 0), every request sampled (ratio 1); ``full10`` = 0.9 x the first + 0.1 x the
#: second. Same sampler, same code path (the root decision is taken ahead at any ratio).
UNSAMPLED = Variant(
    "unsampled", "full, no request sampled", {**FULL10.env, "OTEL_TRACES_SAMPLER_ARG": "0"}
)
SAMPLED = Variant(
    "sampled", "full, every request sampled", {**FULL10.env, "OTEL_TRACES_SAMPLER_ARG": "1"}
)
#: ``off2``: a second telemetry-off app, the A/A control. Instructions do not depend on the
#: machine's load, but they do on the process: the interpreter's type-attribute cache is indexed
#: by the attribute name's address, and one process's layout misses it more often than
#: another's (two identical metrics-only apps, a list read: 376 k and 420 k instructions in
#: ``_PyType_Lookup``, of 6.4 M). ``pfi``: the reference, on the same app.
VARIANTS = (OFF, OFF2, METRICS, UNSAMPLED, SAMPLED, PFI)
#: every endpoint of the CPU figures, in their order
ENDPOINTS = ("get_job", "list_jobs", "post_job", "ready")
#: requests counted per endpoint (a list or a POST costs about three status reads, a probe a
#: quarter of one)
REQUESTS = {"get_job": 30, "list_jobs": 12, "post_job": 12, "ready": 40}
QUICK_REQUESTS = {"get_job": 20, "list_jobs": 10, "post_job": 10, "ready": 30}
QUIET = {
    "TRAWL_HEALTH_REFRESH_INTERVAL_S": "3600",
    # the probe answers from the last result: a check that took longer than its 1 s timeout
    # (under valgrind they all do) would make it 503, and a refresh (every 2 s in real time)
    # would land in the window as the other timers would
    "TRAWL_HEALTH_CHECK_TIMEOUT_S": "30",
    "TRAWL_HEALTH_CACHE_TTL_S": "3600",
    "TRAWL_QUEUE_STATS_INTERVAL_S": "3600",
    "TRAWL_ERROR_FLUSH_INTERVAL_S": "3600",
    "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
    # exported at the end of each window instead (tests/bench/inproc.py)
    "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    "OTEL_BLRP_SCHEDULE_DELAY": "3600000",
}
WINDOW_TIMEOUT_S = 600.0


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def total_instructions(dump: Path) -> int:
    """The dump's ``totals:`` (the sum of its costs). Not ``summary:``: after a first dump,
    callgrind 3.19 writes a summary that is not this part's total (it can even wrap below
    zero)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals in {dump}")


def control(pid: int, *args: str) -> None:
    """``callgrind_control ARGS PID``: counting on or off (``-i``), a dump (``-d``)."""
    subprocess.run(
        ["callgrind_control", *args, str(pid)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class _Driven:
    """One variant's app under callgrind, and the control files it waits on."""

    def __init__(self, bench: Bench, variant: Variant, requests: dict[str, int]) -> None:
        self.variant = variant
        label = f"instr_{variant.name}"
        self.control = bench.workdir / "instructions" / variant.name
        shutil.rmtree(self.control, ignore_errors=True)
        self.control.mkdir(parents=True)
        self.out = self.control / "callgrind.out"
        env = bench.env(variant, bench.database("postgres", label), label, extra=QUIET)
        self.log = (self.control / "app.log").open("wb")
        self.popen = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={self.out}",
                sys.executable,
                "-m",
                "tests.bench.inproc",
                "--control",
                str(self.control),
                "--requests",
                ",".join(f"{ep}={n}" for ep, n in requests.items()),
                "--site-url",
                bench.site_url("/p/1"),
                *(["--pfi"] if variant.pfi else []),
                *ENDPOINTS,
            ],
            cwd=ROOT,
            env={**clean_environ(), **env, "PYTHONUNBUFFERED": "1"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.next = 0  # the endpoint whose window is open or next

    def _control(self, *args: str) -> None:
        control(self.popen.pid, *args)

    def _alive_or_raise(self) -> None:
        if self.popen.poll() is not None:
            tail = (self.control / "app.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.variant.name} app under callgrind exited:\n{tail}")

    def step(self) -> bool:
        """Advance this app's windows by one event when ready; True once all are dumped."""
        if self.next >= len(ENDPOINTS):
            return True
        self._alive_or_raise()
        ep = ENDPOINTS[self.next]
        if not (self.control / f"{ep}.go").exists():
            if (self.control / f"{ep}.ready").exists():
                self._control("-i", "on")
                (self.control / f"{ep}.go").touch()
        elif (self.control / f"{ep}.done").exists():
            self._control("-d")
            self._control("-i", "off")
            (self.control / f"{ep}.next").touch()
            self.next += 1
        return self.next >= len(ENDPOINTS)

    def finish(self, requests: dict[str, int]) -> dict[str, float]:
        try:
            self.popen.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.log.close()
        dumps = sorted(
            (p for p in self.control.glob("callgrind.out.*") if p.suffix[1:].isdigit()),
            key=lambda p: int(p.suffix[1:]),
        )
        if len(dumps) != len(ENDPOINTS):
            raise RuntimeError(f"{self.variant.name}: {len(dumps)} dumps, not {len(ENDPOINTS)}")
        return {
            ep: total_instructions(d) / requests[ep] for ep, d in zip(ENDPOINTS, dumps, strict=True)
        }

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()


def run(bench: Bench) -> dict[str, Any]:
    if not available():
        return {"skipped": "valgrind (callgrind) is not installed"}
    requests = QUICK_REQUESTS if bench.config.quick else REQUESTS
    bench.log(f"instructions: {len(VARIANTS)} apps under callgrind, {requests} requests")
    started = time.monotonic()
    apps = [_Driven(bench, v, requests) for v in VARIANTS]
    try:
        deadline = time.monotonic() + WINDOW_TIMEOUT_S
        while not all([a.step() for a in apps]):  # an app that died raises here
            if time.monotonic() > deadline:
                raise TimeoutError(f"callgrind windows not done after {WINDOW_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        per = {a.variant.name: a.finish(requests) for a in apps}
    finally:
        for a in apps:
            a.kill()
    per[FULL10.name] = {
        ep: 0.9 * per[UNSAMPLED.name][ep] + 0.1 * per[SAMPLED.name][ep] for ep in ENDPOINTS
    }
    return {
        "requests": requests,
        "endpoints": list(ENDPOINTS),
        "per_request": per,
        "seconds": time.monotonic() - started,
    }
