"""Telemetry that never reached the collector: failed exports and full export queues.

The SDK (1.45) does not count an export that failed (collector down, refused, timed out): the
batch is logged once and gone. ``configure()`` wraps every exporter and batch processor so
that each lost item is counted

* in process: :func:`export_failures` (works when the collector, and so the metrics
  pipeline itself, is down);
* as the counter ``trawl.telemetry.export.failures`` ({item}; ``trawl.telemetry.signal`` =
  traces | metrics | logs, ``trawl.telemetry.reason`` = export_failed | queue_full), exported
  with the other metrics once the collector is back (it is cumulative);
* in a warning on stdout (logger ``otel``, never bridged to OTLP): at the first loss of a
  signal, then at most every :data:`LOG_INTERVAL_S`, and a summary at shutdown.

Items are spans, log records and metric data points. Never raises into the caller.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from opentelemetry.metrics import Counter, MeterProvider
from opentelemetry.sdk._logs import ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["METRIC_NAME", "ExportStats", "export_failures"]

Signal = Literal["traces", "metrics", "logs"]
Reason = Literal["export_failed", "queue_full"]

METRIC_NAME = "trawl.telemetry.export.failures"
SIGNAL_ATTR = "trawl.telemetry.signal"
REASON_ATTR = "trawl.telemetry.reason"
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")
REASONS: tuple[Reason, ...] = ("export_failed", "queue_full")
LOG_INTERVAL_S = 60.0

_log = logging.getLogger("otel")


class ExportStats:
    """Thread-safe counts of lost telemetry for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[Signal, Reason], int] = {}
        self._logged_at: dict[Signal, float] = {}
        self._provider: Callable[[], MeterProvider | None] = lambda: None
        self._counter: tuple[MeterProvider, Counter] | None = None

    def bind(self, provider: Callable[[], MeterProvider | None]) -> None:
        """Where the ``trawl.telemetry.export.failures`` counter lives (the active provider)."""
        self._provider = provider

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._logged_at.clear()
            self._counter = None

    def record(self, signal: Signal, reason: Reason, items: int) -> None:
        if items <= 0:
            return
        try:
            now = time.monotonic()
            with self._lock:
                key = (signal, reason)
                self._counts[key] = self._counts.get(key, 0) + items
                last = self._logged_at.get(signal)
                due = last is None or now - last >= LOG_INTERVAL_S
                if due:
                    self._logged_at[signal] = now
                total = sum(n for (s, _), n in self._counts.items() if s == signal)
            counter = self._get_counter()
            if counter is not None:
                counter.add(items, {SIGNAL_ATTR: signal, REASON_ATTR: reason})
            if due:
                _log.warning(
                    "telemetry export failing: %d %s item(s) lost so far (%s)",
                    total,
                    signal,
                    reason,
                    extra={SIGNAL_ATTR: signal, "trawl.telemetry.lost_items": total},
                )
        except Exception:
            _log.debug("export failure accounting failed", exc_info=True)

    def precreate(self) -> None:
        """Start every signal and reason series at 0 (a series that first appears at 1 is
        invisible to ``increase()``)."""
        try:
            counter = self._get_counter()
            if counter is not None:
                for signal in SIGNALS:
                    for reason in REASONS:
                        counter.add(0, {SIGNAL_ATTR: signal, REASON_ATTR: reason})
        except Exception:
            _log.debug("export failure series not pre-created", exc_info=True)

    def _get_counter(self) -> Counter | None:
        provider = self._provider()
        if provider is None:
            return None
        cached = self._counter
        if cached is not None and cached[0] is provider:
            return cached[1]
        counter = provider.get_meter("otel").create_counter(
            METRIC_NAME, unit="{item}", description="Telemetry items lost before the collector."
        )
        self._counter = (provider, counter)  # the object, not its id (ids are reused)
        return counter

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                signal: {reason: self._counts.get((signal, reason), 0) for reason in REASONS}
                for signal in SIGNALS
            }

    def log_summary(self) -> None:
        lost = {s: sum(r.values()) for s, r in self.snapshot().items() if sum(r.values())}
        if lost:
            _log.warning(
                "telemetry lost during this process: %s",
                ", ".join(f"{n} {s}" for s, n in lost.items()),
                extra={f"trawl.telemetry.lost.{s}": n for s, n in lost.items()},
            )


STATS = ExportStats()


def export_failures() -> dict[str, dict[str, int]]:
    """Items lost per signal and reason since the process started (or its last fork), e.g.
    ``{"traces": {"export_failed": 512, "queue_full": 40}, "metrics": {...}, "logs": {...}}``.
    """
    return STATS.snapshot()


def _failed(result: Any) -> bool:
    return getattr(result, "name", None) != "SUCCESS"


class CountingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, stats: ExportStats = STATS) -> None:
        self._inner = inner
        self._stats = stats

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            self._stats.record("traces", "export_failed", len(spans))
            raise
        if _failed(result):
            self._stats.record("traces", "export_failed", len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, stats: ExportStats = STATS) -> None:
        self._inner = inner
        self._stats = stats

    def export(self, batch: Sequence[ReadableLogRecord]) -> Any:
        try:
            result = self._inner.export(batch)
        except Exception:
            self._stats.record("logs", "export_failed", len(batch))
            raise
        if _failed(result):
            self._stats.record("logs", "export_failed", len(batch))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _data_points(data: MetricsData) -> int:
    return sum(
        len(getattr(metric.data, "data_points", ()))
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


class CountingMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, stats: ExportStats = STATS) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._stats = stats

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            self._stats.record("metrics", "export_failed", _data_points(metrics_data))
            raise
        if _failed(result):
            self._stats.record("metrics", "export_failed", _data_points(metrics_data))
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _queue_full(processor: object) -> bool:
    # The SDK drops the oldest item when its queue is full; it only counts that with the
    # opt-in OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED. Private attributes, hence guarded.
    # Checked just before the SDK's own check: an export thread popping in between can make
    # the count high by one, never low.
    batch = getattr(processor, "_batch_processor", None)
    queue = getattr(batch, "_queue", None)
    size = getattr(batch, "_max_queue_size", None)
    if getattr(batch, "_shutdown", False) or queue is None or not isinstance(size, int):
        return False
    return len(queue) >= size


class CountingBatchSpanProcessor(BatchSpanProcessor):
    def __init__(self, exporter: SpanExporter, stats: ExportStats = STATS) -> None:
        super().__init__(CountingSpanExporter(exporter, stats))
        self._stats = stats

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is not None and ctx.trace_flags.sampled and _queue_full(self):
            self._stats.record("traces", "queue_full", 1)
        super().on_end(span)


#: Trawl's default log batch delay (the SDK's is 1000 ms): the first stage of the < 1 s
#: log-latency budget (docs/telemetry.md, "Log latency"). ``OTEL_BLRP_SCHEDULE_DELAY`` wins.
LOG_SCHEDULE_DELAY_MS = 200.0


def log_schedule_delay_ms() -> float | None:
    """Trawl's default, unless ``OTEL_BLRP_SCHEDULE_DELAY`` is set (then the SDK reads it)."""
    return None if os.environ.get("OTEL_BLRP_SCHEDULE_DELAY") else LOG_SCHEDULE_DELAY_MS


class CountingBatchLogRecordProcessor(BatchLogRecordProcessor):
    def __init__(self, exporter: LogRecordExporter, stats: ExportStats = STATS) -> None:
        super().__init__(
            CountingLogExporter(exporter, stats), schedule_delay_millis=log_schedule_delay_ms()
        )
        self._stats = stats

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if _queue_full(self):
            self._stats.record("logs", "queue_full", 1)
        super().on_emit(log_record)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=STATS.reset)
