"""otel.fastpath: the same exported points as the SDK's own path, for less work per call."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    TraceBasedExemplarFilter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from otel import fastpath

BOUNDS = (0.005, 0.01, 0.1, 1.0)


@pytest.fixture(autouse=True)
def sdk_path_after() -> Iterator[None]:
    yield
    fastpath.install()  # otel.configure installs it; leave the process as the app runs it


def _views() -> list[View]:
    return [
        View(
            instrument_name="h",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=BOUNDS),
        ),
        View(instrument_name="filtered", attribute_keys={"keep"}),
    ]


def _points(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], dict[str, Any]]:
    """Every exported point by (metric, attributes), without timestamps."""
    data = reader.get_metrics_data()
    out: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    attrs = tuple(sorted((p.attributes or {}).items()))
                    if hasattr(p, "bucket_counts"):
                        out[(metric.name, attrs)] = {
                            "count": p.count,
                            "sum": round(p.sum, 9),
                            "buckets": tuple(p.bucket_counts),
                            "min": p.min,
                            "max": p.max,
                            "exemplars": len(p.exemplars),
                        }
                    else:
                        out[(metric.name, attrs)] = {"value": p.value}
    return out


def _workload(meter: Meter) -> None:
    h = meter.create_histogram("h", unit="s")
    c = meter.create_counter("c")
    u = meter.create_up_down_counter("u")
    f = meter.create_counter("filtered")
    for i in range(300):
        op = ("SELECT", "INSERT", "UPDATE")[i % 3]
        h.record((i % 17) / 40, {"db.operation.name": op, "db.system.name": "postgresql"})
        h.record(0.002 * i, None)
        c.add(i % 4, {"outcome": "ok" if i % 5 else "error"})
        u.add(1 if i % 2 else -1, {"queue": "default"})
        f.add(1, {"keep": "a", "drop": str(i)})  # the view keeps only "keep"
    # what the SDK refuses or treats specially goes through its own path
    h.record(-1.0, {"db.operation.name": "SELECT", "db.system.name": "postgresql"})
    h.record(math.nan, {"db.operation.name": "SELECT", "db.system.name": "postgresql"})
    h.record(0.5, {"db.operation.name": "SELECT", "db.system.name": ["not", "hashable"]})  # type: ignore[dict-item]
    c.add(-3, {"outcome": "ok"})


def _run(fast: bool, **provider_kwargs: Any) -> dict[tuple[str, tuple[Any, ...]], dict[str, Any]]:
    if fast:
        assert fastpath.install()
    else:
        fastpath.uninstall()
    assert fastpath.active() is fast
    reader = InMemoryMetricReader(**provider_kwargs.pop("reader_kwargs", {}))
    provider = MeterProvider(metric_readers=[reader], views=_views(), **provider_kwargs)
    try:
        _workload(provider.get_meter("test"))
        return _points(reader)
    finally:
        provider.shutdown()


def test_the_fast_path_exports_what_the_sdk_path_does() -> None:
    sdk = _run(False, exemplar_filter=AlwaysOffExemplarFilter())
    fast = _run(True, exemplar_filter=AlwaysOffExemplarFilter())
    assert fast == sdk
    key = ("h", (("db.operation.name", "SELECT"), ("db.system.name", "postgresql")))
    assert sdk[key]["count"] == 100  # the negative and the NaN ones are dropped
    unhashable = ("h", (("db.operation.name", "SELECT"), ("db.system.name", ("not", "hashable"))))
    assert sdk[unhashable]["count"] == 1
    assert sdk[("filtered", (("keep", "a"),))] == {"value": 300}


def test_the_fast_path_serves_attribute_sets_seen_before() -> None:
    fastpath.install()
    provider = MeterProvider(
        metric_readers=[InMemoryMetricReader()], exemplar_filter=AlwaysOffExemplarFilter()
    )
    h = provider.get_meter("test").create_histogram("h")
    h.record(0.1, {"a": "1"})
    h.record(0.2, {"a": "1"})
    state = h.__dict__[fastpath._SLOT]
    assert list(state.aggs) == [(("a", "1"),)]  # resolved once, replayed after
    provider.shutdown()


def test_delta_readers_keep_the_sdk_path_and_their_numbers() -> None:
    delta = {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.DELTA,
        Histogram: AggregationTemporality.DELTA,
    }
    kwargs: dict[str, Any] = {
        "exemplar_filter": AlwaysOffExemplarFilter(),
        "reader_kwargs": {"preferred_temporality": delta},
    }
    assert _run(True, **dict(kwargs)) == _run(False, **dict(kwargs))

    fastpath.install()
    reader = InMemoryMetricReader(preferred_temporality=delta)
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    c = provider.get_meter("test").create_counter("c")
    c.add(2, {"a": "1"})
    c.add(3, {"a": "1"})
    assert _points(reader) == {("c", (("a", "1"),)): {"value": 5}}
    c.add(4, {"a": "1"})  # after a collection that replaced the delta aggregation
    assert _points(reader) == {("c", (("a", "1"),)): {"value": 4}}
    provider.shutdown()


@pytest.mark.parametrize("sampler, exemplars", [(ALWAYS_ON, 1), (ALWAYS_OFF, 0)])
def test_a_sampled_span_still_gets_its_exemplar(sampler: Any, exemplars: int) -> None:
    fastpath.install()
    tracer = TracerProvider(sampler=sampler).get_tracer("test")
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], views=_views(), exemplar_filter=TraceBasedExemplarFilter()
    )
    h = provider.get_meter("test").create_histogram("h")
    h.record(0.3, {"a": "1"})  # outside any span: no exemplar, and the set is now cached
    h.record(0.4, {"a": "1"})
    with tracer.start_as_current_span("request"):
        h.record(0.05, {"a": "1"})
    point = _points(reader)[("h", (("a", "1"),))]
    assert point["count"] == 3
    assert point["exemplars"] == exemplars
    provider.shutdown()


def _exemplars(fast: bool) -> tuple[dict[tuple[str, tuple[Any, ...]], list[Any]], list[Any]]:
    """The trace-based filter's exemplars, per point, of measurements made in and out of a
    sampled span (a span that has ended included), and the sampled spans' ids."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

    if fast:
        assert fastpath.install()
    else:
        fastpath.uninstall()
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], views=_views(), exemplar_filter=TraceBasedExemplarFilter()
    )
    meter = provider.get_meter("test")
    h, c = meter.create_histogram("h"), meter.create_counter("c")
    f = meter.create_counter("filtered")
    ids = []
    try:
        for _ in range(2):  # the second round takes the fast path, when installed
            h.record(0.3, {"a": "1"})  # outside any span: no exemplar
            unsampled = NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(0)))
            with use_span(unsampled):
                h.record(0.3, {"a": "1"})  # in an unsampled span: none either
        with tracer.start_as_current_span("request") as span:
            h.record(0.05, {"a": "1"})
            c.add(3, {"outcome": "ok"})
            f.add(1, {"keep": "a", "drop": "x"})  # the exemplar keeps what the view drops
            ids.append(span.get_span_context())
        ended = tracer.start_span("ended")
        with use_span(ended):
            ended.end()
            h.record(2.0, {"a": "1"})  # after the span ended, as the request's duration is
        ids.append(ended.get_span_context())
        data = reader.get_metrics_data()
        assert data is not None
        out = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        key = (metric.name, tuple(sorted((p.attributes or {}).items())))
                        out[key] = sorted(
                            (e.value, e.trace_id, e.span_id, dict(e.filtered_attributes or {}))
                            for e in p.exemplars
                        )
        return out, ids
    finally:
        provider.shutdown()


def test_the_fast_path_offers_the_exemplars_the_sdk_path_does() -> None:
    for fast in (False, True):
        found, (request, ended) = _exemplars(fast)  # other ids each time, the same shape
        expected = {
            ("h", (("a", "1"),)): [
                (0.05, request.trace_id, request.span_id, {}),
                (2.0, ended.trace_id, ended.span_id, {}),
            ],
            ("filtered", (("keep", "a"),)): [(1, request.trace_id, request.span_id, {"drop": "x"})],
            ("c", (("outcome", "ok"),)): [(3, request.trace_id, request.span_id, {})],
        }
        assert {key: found[key] for key in expected} == expected, f"fast path: {fast}"


def test_a_span_that_cannot_say_whether_it_is_sampled_costs_the_exemplar_only() -> None:
    """Instrumentation never raises into the app: a current span whose context cannot be read
    loses the exemplar, never the measurement."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

    class Broken(NonRecordingSpan):
        def get_span_context(self) -> SpanContext:
            raise RuntimeError("broken span")

    fastpath.install()
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], views=_views(), exemplar_filter=TraceBasedExemplarFilter()
    )
    h = provider.get_meter("test").create_histogram("h")
    h.record(0.3, {"a": "1"})  # the set is cached: the next ones take the fast path
    with use_span(Broken(SpanContext(1, 2, False, TraceFlags(1)))):
        h.record(0.05, {"a": "1"})
    point = _points(reader)[("h", (("a", "1"),))]
    assert point["count"] == 2 and point["exemplars"] == 0
    provider.shutdown()


def test_past_the_cardinality_limit_the_overflow_series_is_kept() -> None:
    def run(fast: bool) -> dict[tuple[str, tuple[Any, ...]], dict[str, Any]]:
        fastpath.install() if fast else fastpath.uninstall()
        reader = InMemoryMetricReader(cardinality_limits={Counter: 3})
        provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
        c = provider.get_meter("test").create_counter("c")
        for i in range(10):
            for _ in range(3):
                c.add(1, {"k": str(i)})
        points = _points(reader)
        provider.shutdown()
        return points

    sdk = run(False)
    assert ("c", (("otel.metric.overflow", True),)) in sdk
    assert run(True) == sdk


def test_frozen_attributes_are_read_only_and_keyed_once() -> None:
    import copy
    import pickle

    attrs = fastpath.FrozenAttributes({"a": "1", "b": 2})
    assert attrs == {"a": "1", "b": 2} and attrs.key == (("a", "1"), ("b", 2))
    with pytest.raises(TypeError):
        attrs["c"] = 3
    with pytest.raises(TypeError):
        attrs.update(c=3)
    for clone in (copy.copy(attrs), copy.deepcopy(attrs), pickle.loads(pickle.dumps(attrs))):
        assert clone == attrs and clone.key == attrs.key


def test_frozen_attributes_take_the_same_series_as_a_dict() -> None:
    fastpath.install()
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], views=_views(), exemplar_filter=AlwaysOffExemplarFilter()
    )
    h = provider.get_meter("test").create_histogram("h")
    frozen = fastpath.FrozenAttributes({"db.operation.name": "SELECT"})
    for value in (0.002, 0.2, 2.0):
        h.record(value, frozen)
        h.record(value, {"db.operation.name": "SELECT"})
    point = _points(reader)[("h", (("db.operation.name", "SELECT"),))]
    assert point["count"] == 6 and point["buckets"] == (2, 0, 0, 2, 2)
    assert point["min"] == 0.002 and point["max"] == 2.0
    provider.shutdown()
