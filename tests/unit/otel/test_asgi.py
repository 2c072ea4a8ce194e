from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otel
from otel import _setup
from otel.asgi import TelemetryMiddleware
from tests.support.otel_env import Env


def _app(*, trust_incoming: bool = False) -> FastAPI:
    # FastAPI >= 0.16x ships native telemetry on by default; turn it off so only the
    # middleware under test emits (running both doubles every SERVER span).
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def health() -> str:
        return "ok"

    @app.get("/instrumented")
    async def instrumented() -> bool:
        from opentelemetry.instrumentation.utils import is_instrumentation_enabled

        return is_instrumentation_enabled()

    app.add_middleware(TelemetryMiddleware, trust_incoming=trust_incoming)
    return app


def _count_started_spans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the spans the SDK's tracers are asked to start, from now on."""
    from opentelemetry.sdk.trace import Tracer as SdkTracer

    started: list[str] = []
    original = SdkTracer.start_span

    def counting(self: SdkTracer, name: str, *args: object, **kwargs: object) -> object:
        started.append(name)
        return original(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SdkTracer, "start_span", counting)
    return started


def _points(env: Env) -> list[dict[str, object]]:
    data = env.metrics.get_metrics_data()
    if data is None:
        return []
    return [
        dict(p.attributes or {})
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.server.request.duration"
        for p in m.data.data_points
    ]


async def test_route_template_span_and_metric(tel_env: Env) -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/1", headers={"traceparent": parent})).status_code == 200
        assert (await client.get("/items/2")).status_code == 200
        assert (await client.get("/nope")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/boom")).status_code == 500
    tel_env.flush()
    spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    names = [s.name for s in spans]
    assert names == ["GET /items/{item_id}", "GET /items/{item_id}", "GET", "GET /boom"]
    # an untrusted caller's traceparent is a link, not the parent: our trace, our sampler
    first = spans[0]
    assert format(first.context.trace_id, "032x") != "0af7651916cd43dd8448eb211c80319c"
    assert first.parent is None
    [link] = first.links
    assert format(link.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(link.context.span_id, "016x") == "b7ad6b7169203331"
    assert spans[1].links == () or not spans[1].links  # no header, no link
    boom = spans[3]
    assert boom.status.status_code is StatusCode.ERROR
    assert dict(boom.attributes or {})["error.type"] == "RuntimeError"

    points = _points(tel_env)
    routes = {(p.get("http.route"), p.get("http.response.status_code")) for p in points}
    assert ("/items/{item_id}", 200) in routes
    assert (None, 404) in routes
    assert all(p.get("http.route") != "/healthz" for p in points)
    item_points = [p for p in points if p.get("http.route") == "/items/{item_id}"]
    assert len(item_points) == 1  # both item requests share one series
    assert item_points[0]["http.request.method"] == "GET"
    assert item_points[0]["url.scheme"] == "http"


PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_trusted_traceparent_continues_the_callers_trace(tel_env: Env) -> None:
    transport = httpx.ASGITransport(app=_app(trust_incoming=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/1", headers={"traceparent": PARENT})).status_code == 200
    tel_env.flush()
    [span] = tel_env.spans.get_finished_spans()
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert not span.links


@pytest.mark.parametrize("trusted", [False, True])
async def test_a_sampled_flag_forces_sampling_only_when_trusted(
    trusted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a sampler that keeps no new trace, a caller's ``-01`` flag keeps the request's span
    only when the caller is trusted; the request is measured either way."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    _setup.reset()
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tel = otel.configure(
        "trawl-test", service_version="0", span_exporter=spans, metric_readers=[reader]
    )
    try:
        transport = httpx.ASGITransport(app=_app(trust_incoming=trusted))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(5):
                r = await client.get("/items/1", headers={"traceparent": PARENT})
                assert r.status_code == 200
        assert tel.force_flush(5.0)
        assert len(spans.get_finished_spans()) == (5 if trusted else 0)
        data = reader.get_metrics_data()
        assert data is not None
        counts = [
            p.count
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "http.server.request.duration"
            for p in m.data.data_points
        ]
        assert counts == [5]
    finally:
        _setup.reset()


@pytest.mark.parametrize("path", ["/health", "/healthz", "/metrics"])
def test_excluded_regex_anchored(path: str) -> None:
    mw = TelemetryMiddleware(app=lambda s, r, se: None)  # type: ignore[arg-type,return-value]
    assert mw._excluded is not None and mw._excluded.search(path)
    assert not mw._excluded.search("/api/health")
    assert not mw._excluded.search("/metrics/x")


async def test_metrics_only_records_the_same_series_and_builds_no_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No trace exporter: no SDK tracer provider, so not one span object; the duration
    histogram has the same attributes as with tracing (route, status, error type)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    _setup.reset()
    started = _count_started_spans(monkeypatch)
    reader = InMemoryMetricReader()
    tel = otel.configure("trawl-test", service_version="0", metric_readers=[reader])
    try:
        assert tel.enabled and tel.tracer_provider is None
        assert not isinstance(trace.get_tracer_provider(), SdkTracerProvider)
        transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/items/1")).status_code == 200
            assert (await client.get("/nope")).status_code == 404
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/boom")).status_code == 500
        assert started == []
        env = Env(tel, InMemorySpanExporter(), reader, None)  # type: ignore[arg-type]
        points = {
            (p.get("http.route"), p.get("http.response.status_code"), p.get("error.type"))
            for p in _points(env)
        }
        assert points == {
            ("/items/{item_id}", 200, None),
            (None, 404, None),
            ("/boom", None, "RuntimeError"),  # raised through us: the 500 is sent outside
        }
    finally:
        _setup.reset()


@pytest.mark.parametrize(("ratio", "enabled"), [("0", False), ("1", True)])
async def test_contrib_instrumentation_is_off_inside_an_unsampled_request(
    ratio: str, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a parent-based sampler nothing inside an unsampled request can be sampled: the
    contrib instrumentations (SQLAlchemy, Redis) are told to skip it; a sampled one keeps them."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    _setup.reset()
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    otel.configure("trawl-test", service_version="0", span_exporter=spans, metric_readers=[reader])
    try:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/instrumented")
        assert r.status_code == 200
        assert r.json() is enabled
        env = Env(otel.Telemetry("t", ""), spans, reader, None)  # type: ignore[arg-type]
        assert [p.get("http.route") for p in _points(env)] == ["/instrumented"]  # measured
    finally:
        _setup.reset()


@pytest.mark.parametrize(("ratio", "enabled"), [("0", False), ("1", True)])
def test_quiet_unless_sampled(ratio: str, enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's attempts do as the middleware: an unsampled span turns the contrib
    instrumentations off inside it, a sampled one leaves them on, and it ends with the block."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    _setup.reset()
    otel.configure("trawl-test", service_version="0", span_exporter=InMemorySpanExporter())
    try:
        with (
            trace.get_tracer("t").start_as_current_span("attempt") as span,
            otel.quiet_unless_sampled(span),
        ):
            assert is_instrumentation_enabled() is enabled
        assert is_instrumentation_enabled()
    finally:
        _setup.reset()


async def test_a_root_request_is_sampled_by_the_sdks_rule_before_any_span_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a ratio, the middleware decides a root request's sampling from its trace id before
    building a span (otel/sampling.py). The decision must be the SDK sampler's for that id: a
    recorded SERVER span only for ids under the bound, the SDK's ``start_span`` only for those,
    and every unsampled request still carries a valid, unsampled trace context."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    _setup.reset()
    started = _count_started_spans(monkeypatch)
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tel = otel.configure(
        "trawl-test", service_version="0", span_exporter=spans, metric_readers=[reader]
    )
    seen: list[tuple[int, bool, bool]] = []
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/ctx")
    async def ctx() -> None:
        sc = trace.get_current_span().get_span_context()
        seen.append((sc.trace_id, sc.is_valid, sc.trace_flags.sampled))

    app.add_middleware(TelemetryMiddleware)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(200):
                assert (await client.get("/ctx")).status_code == 200
        assert tel.force_flush(5.0)
        bound = TraceIdRatioBased(0.5).bound
        recorded = {s.context.trace_id for s in spans.get_finished_spans()}
        assert len(seen) == 200 and all(valid for _, valid, _ in seen)
        assert {t for t, _, sampled in seen if sampled} == recorded
        assert all((t & TraceIdRatioBased.TRACE_ID_LIMIT) < bound for t in recorded)
        unsampled = {t for t, _, sampled in seen if not sampled}
        assert all((t & TraceIdRatioBased.TRACE_ID_LIMIT) >= bound for t in unsampled)
        assert 40 < len(recorded) < 160 and len(started) == len(recorded)
        env = Env(tel, spans, reader, None)  # type: ignore[arg-type]
        assert sum(1 for p in _points(env) if p.get("http.route") == "/ctx") == 1  # one series
    finally:
        _setup.reset()


async def test_a_sampled_request_duration_carries_its_trace_as_exemplar(tel_env: Env) -> None:
    """The dashboards' exemplar dots open the request's trace: the duration point of a sampled
    request keeps an exemplar with the SERVER span's ids (recorded after the span has ended)."""
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for item in (1, 2, 3):  # the first measurement of a set takes the SDK's path
            assert (await client.get(f"/items/{item}")).status_code == 200
    data = tel_env.metrics.get_metrics_data()  # first: a collection resets the reservoirs
    assert data is not None
    tel_env.flush()
    server = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 3 and all(s.context.trace_flags.sampled for s in server)
    exemplars = [
        e
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.server.request.duration"
        for p in m.data.data_points
        for e in p.exemplars
    ]
    assert exemplars, "no exemplar on a sampled request's duration"
    ids = {(s.context.trace_id, s.context.span_id) for s in server}
    assert {(e.trace_id, e.span_id) for e in exemplars} <= ids
    last = server[-1].context
    assert (last.trace_id, last.span_id) in {(e.trace_id, e.span_id) for e in exemplars}
