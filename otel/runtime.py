"""Runtime metrics of one process: CPU, memory, file descriptors, threads, GC, event loop.

* process and GC counts: ``opentelemetry-instrumentation-system-metrics``, limited to what the
  resource dashboards use (:data:`SYSTEM_METRICS`); host-wide ``system.*`` metrics come from
  node_exporter, not from every Python process;
* GC pause time: a ``gc.callbacks`` hook adds each collection's duration to a per-generation
  total (one clock read and one float add per collection), exported as the counter
  ``trawl.gc.pause.time``;
* the event loop: :class:`LoopMonitor`, a task that wakes every second, records how late it
  woke (``trawl.event_loop.lag``) and stamps the wall-clock time of that tick
  (``trawl.event_loop.last_tick``). The SDK exports from its own thread, so a blocked loop
  keeps exporting an ageing tick: ``time() - trawl_event_loop_last_tick_seconds`` tells
  "alive but stuck" from healthy, on the scrape and the OTLP path alike.

All callbacks read in-memory values or ``/proc`` through psutil: nothing blocks on I/O.
Never raises into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Observation

__all__ = [
    "EVENT_LOOP_LAG",
    "EVENT_LOOP_LAST_TICK",
    "GC_PAUSE_TIME",
    "LAG_BUCKETS_S",
    "SYSTEM_METRICS",
    "LoopMonitor",
    "instrument_runtime",
]

_log = logging.getLogger("otel")
_SCOPE = "otel.runtime"

EVENT_LOOP_LAG = "trawl.event_loop.lag"
EVENT_LOOP_LAST_TICK = "trawl.event_loop.last_tick"
GC_PAUSE_TIME = "trawl.gc.pause.time"
GC_GENERATION = "cpython.gc.generation"

#: What the system-metrics instrumentation reports (its configuration format). Chosen for the
#: resource dashboards: CPU seconds (rate = cores used), RSS, open FDs, threads, GC counts.
#: ``process.cpu.utilization`` is left out: unit ``1`` on a gauge gets ``_ratio`` over OTLP
#: but not on the scrape endpoint, and ``rate(process_cpu_time_seconds_total)`` says the same.
SYSTEM_METRICS: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.memory.usage": None,
    "process.open_file_descriptor.count": None,
    "process.thread.count": None,
    "cpython.gc.collections": None,
}

#: Event-loop lag buckets in seconds: 1 ms (a healthy loop) to 10 s (a loop stuck in a
#: blocking call).
LAG_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


# --------------------------------------------------------------------------- GC pauses


class _GcPauses:
    """Cumulative time spent in collections, per generation (process-wide, installed once)."""

    def __init__(self) -> None:
        self.totals = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, under the GIL: no allocation-heavy work here.
        if phase == "start":
            self._started = time.perf_counter()
        else:
            gen = info.get("generation", 0)
            if 0 <= gen < len(self.totals):
                self.totals[gen] += time.perf_counter() - self._started

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        for gen, total in enumerate(self.totals):
            yield Observation(total, {GC_GENERATION: gen})


_GC = _GcPauses()


# --------------------------------------------------------------------------- event loop


class LoopMonitor:
    """Measures one event loop. ``start()`` on the loop, ``await stop()`` before it closes.

    Every ``interval_s`` the probe sleeps and records how much later than asked it woke
    (``trawl.event_loop.lag``), then stamps ``time.time()`` as the loop's last tick. The
    instruments live on the meter provider installed when :func:`instrument_runtime` ran.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.last_tick = time.time()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.last_tick = time.time()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")
            _MONITORS.add(self)

    async def stop(self) -> None:
        _MONITORS.discard(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.last_tick = time.time()
            lag = loop.time() - expected
            histogram = _LAG
            if histogram is not None:
                try:
                    histogram.record(max(lag, 0.0))
                except Exception:  # instrumentation never raises into the app
                    _log.debug("event-loop lag not recorded", exc_info=True)


_MONITORS: weakref.WeakSet[LoopMonitor] = weakref.WeakSet()
_LAG: Histogram | None = None


def _observe_last_tick(_options: CallbackOptions) -> Iterable[Observation]:
    # One loop per process in production; with several (tests), report the stalest.
    ticks = [m.last_tick for m in list(_MONITORS)]
    if ticks:
        yield Observation(min(ticks))


# --------------------------------------------------------------------------- setup

_lock = threading.Lock()
# the provider itself, never its id() (a new provider may reuse a collected one's id)
_provider: metrics.MeterProvider | None = None


def instrument_runtime(meter_provider: metrics.MeterProvider | None = None) -> bool:
    """Report this process's runtime metrics on ``meter_provider`` (default: the global one).

    Call once per process after :func:`otel.configure` (again after a provider change: the
    previous provider's instruments are left behind with it). Returns True on success;
    never raises.
    """
    global _provider, _LAG
    provider = meter_provider or metrics.get_meter_provider()
    try:
        with _lock:
            if _provider is provider:
                return True
            _system_metrics(provider)
            meter = provider.get_meter(_SCOPE)
            _GC.install()
            meter.create_observable_counter(
                GC_PAUSE_TIME,
                callbacks=[_GC.observe],
                unit="s",
                description="Time spent in garbage collections, by generation.",
            )
            meter.create_observable_gauge(
                EVENT_LOOP_LAST_TICK,
                callbacks=[_observe_last_tick],
                unit="s",
                description="Unix time of the event loop's last heartbeat tick.",
            )
            _LAG = meter.create_histogram(
                EVENT_LOOP_LAG,
                unit="s",
                description="How late the event loop ran a timer due every second.",
                explicit_bucket_boundaries_advisory=list(LAG_BUCKETS_S),
            )
            _provider = provider
        return True
    except Exception:
        _log.warning("runtime metrics unavailable; continuing without them", exc_info=True)
        return False


def _system_metrics(provider: metrics.MeterProvider) -> None:
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    # A singleton per process: re-instrument for a new provider. __init__ re-reads the pid
    # (psutil.Process), so a forked child measures itself.
    inst = SystemMetricsInstrumentor(config=SYSTEM_METRICS)
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    inst.instrument(meter_provider=provider)


def _reset_for_tests() -> None:
    global _provider, _LAG
    with _lock:
        _provider = None
        _LAG = None
