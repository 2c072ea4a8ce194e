from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind, StatusCode

import otel
from tests.support.net import closed_port
from tests.support.otel_env import Env

RECEIVED: list[dict[str, str]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        RECEIVED.append({k.lower(): v for k, v in self.headers.items()})
        code = 404 if self.path.startswith("/missing") else 200
        body = b"hello"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    RECEIVED.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _durations(env: Env) -> list[dict[str, object]]:
    data = env.metrics.get_metrics_data()
    return [
        dict(p.attributes or {})
        for rm in data.resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.client.request.duration"
        for p in m.data.data_points
    ]


async def test_span_recorded_without_propagation(tel_env: Env, server: str) -> None:
    token = context.attach(baggage.set_baggage("tenant", "t1"))
    try:
        async with httpx.AsyncClient(transport=otel.traced_transport()) as client:
            with trace.get_tracer("t").start_as_current_span("scrape"):
                resp = await client.get(f"{server}/page?api_key=SECRET&q=1")
                missing = await client.get(f"{server}/missing")
    finally:
        context.detach(token)
    assert resp.status_code == 200 and missing.status_code == 404
    assert len(RECEIVED) == 2
    for headers in RECEIVED:
        assert "traceparent" not in headers
        assert "tracestate" not in headers
        assert "baggage" not in headers

    tel_env.flush()
    spans = {s.name: s for s in tel_env.spans.get_finished_spans()}
    client_spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(client_spans) == 2
    ok, bad = client_spans
    parent = spans["scrape"]
    assert ok.parent is not None and ok.parent.span_id == parent.context.span_id
    assert ok.name == "GET"
    attrs = dict(ok.attributes or {})
    assert attrs["http.request.method"] == "GET"
    assert attrs["server.address"] == "127.0.0.1"
    assert isinstance(attrs["server.port"], int)
    assert attrs["http.response.status_code"] == 200
    assert "SECRET" not in str(attrs["url.full"])
    assert "error.type" not in attrs
    bad_attrs = dict(bad.attributes or {})
    assert bad_attrs["error.type"] == "404"
    assert bad.status.status_code is StatusCode.ERROR

    points = _durations(tel_env)
    assert {p.get("http.response.status_code") for p in points} == {200, 404}
    for p in points:
        assert "server.address" not in p and "url.full" not in p


async def test_global_httpx_instrumentor_cannot_inject(tel_env: Env, server: str) -> None:
    HTTPXClientInstrumentor().instrument()
    try:
        async with httpx.AsyncClient(transport=otel.traced_transport()) as client:
            with trace.get_tracer("t").start_as_current_span("scrape"):
                await client.get(f"{server}/page")
    finally:
        HTTPXClientInstrumentor().uninstrument()
    assert "traceparent" not in RECEIVED[0]
    tel_env.flush()
    client_spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(client_spans) == 1


async def test_connect_error_recorded(tel_env: Env) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x"
    async with httpx.AsyncClient(transport=otel.traced_transport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
    tel_env.flush()
    (span,) = tel_env.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "httpx.ConnectError"
    (point,) = _durations(tel_env)
    assert point["error.type"] == "httpx.ConnectError"


def test_sync_transport(tel_env: Env, server: str) -> None:
    transport = otel.http_client.TracedTransport(httpx.HTTPTransport())
    with httpx.Client(transport=transport) as client:
        assert client.request("BREW", f"{server}/x").status_code == 501
    assert RECEIVED == [] or "traceparent" not in RECEIVED[0]
    tel_env.flush()
    (span,) = tel_env.spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "HTTP"
    assert attrs["http.request.method"] == "_OTHER"
    assert attrs["http.request.method_original"] == "BREW"


async def test_inside_an_unsampled_parent_no_span_is_started_but_the_duration_is_recorded(
    tel_env: Env, server: str
) -> None:
    """Under the parent-based sampler nothing below an unsampled span can be sampled: the
    transport skips the span (and the URL redaction for its attributes), not the metric."""
    transport = otel.traced_transport()
    started: list[str] = []
    real = transport._rec._tracer

    class Counting:
        def start_as_current_span(self, name: str, *args: object, **kwargs: object) -> object:
            started.append(name)
            return real.start_as_current_span(name, *args, **kwargs)  # type: ignore[arg-type]

    transport._rec._tracer = Counting()  # type: ignore[assignment]
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x1234, span_id=0x5678, is_remote=False, trace_flags=trace.TraceFlags(0)
        )
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with trace.use_span(unsampled):
            resp = await client.get(f"{server}/page")
        with trace.get_tracer("t").start_as_current_span("sampled"):
            await client.get(f"{server}/page")
    assert resp.status_code == 200
    assert started == ["GET"]  # the sampled request only
    tel_env.flush()
    points = _durations(tel_env)
    assert points and all(p["http.response.status_code"] == 200 for p in points)
    data = tel_env.metrics.get_metrics_data()
    counts = [
        p.count
        for rm in data.resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.client.request.duration"
        for p in m.data.data_points
    ]
    assert sum(counts) == 2  # the unsampled request's duration too
    assert [s.name for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT] == [
        "GET"
    ]
