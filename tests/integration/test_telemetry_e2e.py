"""Telemetry of the running service, asserted against in-memory exporters.

One provider set for the module (instrumentations bind their tracers once per process); the
exporters are cleared between tests.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import otel
from app.api.deps import CurrentKey
from app.main import create_app
from app.settings import Settings
from app.telemetry.metrics import CATALOGUE, LONG_SECONDS_BUCKETS
from app.worker import Worker
from otel import _setup
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.databases import Databases
from tests.support.jobs import job_body, wait_job
from tests.support.net import closed_port
from tests.support.target_site import TargetSite
from tests.support.wait import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")
NOT_EXERCISED = ("trawl.proxy.", "trawl.webhook.", "trawl.telemetry.")


@dataclass
class Telemetry:
    tel: otel.Telemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def finished(self) -> list[ReadableSpan]:
        self.tel.force_flush(5.0)
        return list(self.spans.get_finished_spans())


@pytest.fixture(scope="module")
def telemetry() -> Iterator[Telemetry]:
    mp = pytest.MonkeyPatch()
    mp.delenv("OTEL_SDK_DISABLED", raising=False)
    _setup.reset()
    spans, reader, logs = (
        InMemorySpanExporter(),
        InMemoryMetricReader(),
        InMemoryLogRecordExporter(),
    )
    tel = otel.configure(
        "trawl-test",
        service_version="test",
        environment="test",
        span_exporter=spans,
        metric_readers=[reader],
        log_exporter=logs,
    )
    assert tel.enabled
    yield Telemetry(tel, spans, reader, logs)
    _setup.reset()
    mp.undo()


@dataclass
class Stack:
    settings: Settings
    app: Any
    client: httpx.AsyncClient
    worker: Worker


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(telemetry: Telemetry, databases: Databases, redis_url: str) -> AsyncIterator[Stack]:
    settings = make_settings(
        await databases.anew(),
        redis_url,
        queue_stats_interval_s=0.2,
        domain_concurrency=1,
        domain_rate_per_s=20.0,
        politeness_max_wait_s=0.05,
        webhook_delivery_enabled=True,
        webhook_poll_interval_s=0.1,
        error_flush_interval_s=0.1,
    )
    app = create_app(settings)

    async def boom(key: CurrentKey, msg: str = "kaboom") -> None:
        raise RuntimeError(f"failure with a value that must not group: {msg}")

    app.add_api_route("/test/boom", boom, methods=["GET"])
    async with app.router.lifespan_context(app):
        worker = Worker(settings, redis_url)
        running = asyncio.create_task(worker.run())
        # an unhandled error must reach the client as a 500, not be re-raised into the test
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://trawl.test",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as client:
            yield Stack(settings, app, client, worker)
        worker.stop()
        await asyncio.wait_for(running, 40)


@pytest.fixture(autouse=True)
def _clear(telemetry: Telemetry) -> None:
    # spans of the previous test still in the batch processor would land in this one
    telemetry.tel.force_flush(5.0)
    telemetry.spans.clear()


def _trace(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context.trace_id == trace_id]


def _one(spans: list[ReadableSpan], name: str, **attrs: Any) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attrs.items())
    ]
    assert len(found) == 1, (name, attrs, [s.name for s in spans])
    return found[0]


async def test_one_trace_per_job_request_and_linked_retry(
    stack: Stack, telemetry: Telemetry, site: TargetSite
) -> None:
    path = f"/flaky/trace-{uuid.uuid4().hex[:6]}"
    r = await stack.client.post(
        "/v1/jobs", json=job_body([site.url(path + "?fail=1")], options={"max_retries": 2})
    )
    assert r.status_code == 202
    job_id = r.json()["id"]
    await wait_job(stack.client, job_id)
    stream = f"{stack.settings.redis_prefix}:tasks"  # the real stream: the destination

    def both_attempts_stored() -> list[ReadableSpan]:
        spans = telemetry.finished()
        stored = {s.parent.span_id for s in spans if s.name == "store" and s.parent}
        done = [
            s
            for s in spans
            if s.name == f"process {stream}"
            and s.attributes.get("trawl.job.id") == job_id
            and s.context.span_id in stored
        ]
        return spans if len(done) == 2 else []

    spans = await eventually(both_attempts_stored, what="both attempts' spans")
    server = _one(spans, "POST /v1/jobs")
    assert server.kind == SpanKind.SERVER
    assert server.attributes["http.route"] == "/v1/jobs"
    assert server.attributes["http.response.status_code"] == 202
    request_trace = _trace(spans, server.context.trace_id)
    producer = _one(request_trace, f"send {stream}")
    assert producer.kind == SpanKind.PRODUCER
    assert producer.attributes["messaging.destination.name"] == stream
    assert producer.attributes["messaging.operation.name"] == "send"
    assert producer.attributes["messaging.operation.type"] == "send"
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id
    fetch_parents = {s.parent.span_id for s in spans if s.name == "GET" and s.parent}
    # deliveries that only deferred (per-domain politeness) carry an event and no fetch
    consumers = [
        s
        for s in spans
        if s.name == f"process {stream}"
        and s.attributes.get("trawl.job.id") == job_id
        and s.context.span_id in fetch_parents
    ]
    assert len(consumers) == 2
    first = _one(consumers, f"process {stream}", **{"trawl.task.attempt": 1})
    retry = _one(consumers, f"process {stream}", **{"trawl.task.attempt": 2})
    assert first.kind == SpanKind.CONSUMER
    assert first.attributes["messaging.destination.name"] == stream
    assert first.attributes["messaging.operation.name"] == "process"
    assert first.attributes["messaging.consumer.group.name"] == "workers"
    assert first.attributes["messaging.client.id"] == stack.worker.worker_id
    assert first.context.trace_id == server.context.trace_id
    assert first.parent is not None and first.parent.span_id == producer.context.span_id
    # the retry is a new trace, linked to the request's
    assert retry.context.trace_id != server.context.trace_id
    assert retry.parent is None
    assert [link.context.trace_id for link in retry.links] == [server.context.trace_id]
    for consumer in (first, retry):
        children = [s for s in spans if s.parent and s.parent.span_id == consumer.context.span_id]
        kinds = {(s.name, s.kind) for s in children}
        assert ("GET", SpanKind.CLIENT) in kinds, kinds
        assert ("store", SpanKind.INTERNAL) in kinds
        fetch = next(s for s in children if s.name == "GET")
        assert fetch.attributes["http.request.method"] == "GET"
        assert fetch.attributes["server.address"] == "127.0.0.1"
    retry_children = {
        s.name for s in spans if s.parent and s.parent.span_id == retry.context.span_id
    }
    assert "extract" in retry_children
    # SQL and Redis instrumentation: statements inside the request and the task show up
    assert any(
        s.attributes.get("db.system.name") == "redis" or s.attributes.get("db.system") == "redis"
        for s in request_trace
    ), {s.name for s in request_trace}
    assert any(
        (s.attributes.get("db.system.name") or s.attributes.get("db.system"))
        in ("sqlite", "postgresql")
        for s in request_trace
    )
    # the poll loops made no spans of their own: every span belongs to a request or a task
    roots = [s for s in spans if s.parent is None]
    assert {s.name for s in roots} <= {
        "POST /v1/jobs",
        "GET /v1/jobs/{job_id}",
        f"process {stream}",
    }, {s.name for s in roots}
    # exceptions and errors: the failed first attempt is a 503 on the client span
    first_fetch = next(
        s
        for s in spans
        if s.parent and s.parent.span_id == first.context.span_id and s.name == "GET"
    )
    assert first_fetch.attributes["http.response.status_code"] == 503


async def test_no_trace_context_reaches_target_sites(
    stack: Stack, telemetry: Telemetry, site: TargetSite
) -> None:
    marker = f"/page/no-traceparent-{uuid.uuid4().hex[:6]}"
    r = await stack.client.post(
        "/v1/jobs",
        json=job_body([site.url(marker)]),
        headers={
            "traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
            "baggage": "user=secret",
        },
    )
    await wait_job(stack.client, r.json()["id"])
    seen = [
        h for h in site.headers_seen if h.get("host") and marker in json.dumps(h)
    ] or site.headers_seen
    assert seen
    for headers in site.headers_seen:
        assert "traceparent" not in headers and "baggage" not in headers
        assert "tracestate" not in headers and "x-request-id" not in headers
    # a public caller's traceparent is kept as a link, not obeyed (TRAWL_TRUST_TRACEPARENT)
    server = _one(telemetry.finished(), "POST /v1/jobs")
    assert format(server.context.trace_id, "032x") != "ab" * 16
    assert [format(link.context.trace_id, "032x") for link in server.links] == ["ab" * 16]


def _metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    data: MetricsData | None = reader.get_metrics_data()
    out: dict[str, Any] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).append(metric)
    return out


async def test_every_catalogue_metric_with_unit_and_attributes(
    stack: Stack, telemetry: Telemetry, site: TargetSite
) -> None:
    urls = [
        site.url("/page/m1"),
        site.url("/status/403"),
        site.url("/captcha"),
        site.url("/page/m2"),
        site.url("/page/m3"),
    ]
    r = await stack.client.post("/v1/jobs", json=job_body(urls, options={"max_retries": 0}))
    await wait_job(stack.client, r.json()["id"])
    dup = job_body([site.url("/page/m4")])
    await stack.client.post("/v1/jobs", json=dup, headers={"Idempotency-Key": "m"})
    await stack.client.post("/v1/jobs", json=dup, headers={"Idempotency-Key": "m"})
    await stack.client.post("/v1/jobs", json={"urls": []})
    assert (await stack.client.get("/test/boom")).status_code == 500
    # a lost worker's task, reaped
    from app.job import tasks as job_tasks

    await _stale_running_task(stack, site)
    # whichever reaper gets there first (the worker's loop or this call) counts it
    await job_tasks.reap(stack.worker.db, stack.settings.stale_after_s)
    # This scenario uses no proxy, no webhook and loses no telemetry: those instruments are
    # checked against their specs in tests/unit/test_telemetry_docs.py.
    exercised = [s for s in CATALOGUE if not s.name.startswith(NOT_EXERCISED)]

    def all_reported() -> dict[str, Any]:  # once gauges are sampled and error groups flushed
        found = _metrics(telemetry.reader)
        missing = [spec.name for spec in exercised if spec.name not in found]
        assert missing == []
        return found

    found = await eventually(all_reported, what="every exercised catalogue metric")
    for spec in exercised:
        [metric] = found[spec.name][:1]
        assert metric.unit == spec.unit, spec.name
        keys = {k for point in metric.data.data_points for k in (point.attributes or {})}
        assert keys <= set(spec.attributes), (spec.name, keys)
        if spec.attributes and spec.kind != "updowncounter":
            assert keys, spec.name
    bans = {
        dict(p.attributes)["trawl.ban.signal"]
        for p in found["trawl.fetch.bans"][0].data.data_points
    }
    assert {"status_403", "challenge_page"} <= bans
    submitted = {
        dict(p.attributes)["trawl.submit.outcome"]
        for p in found["trawl.job.submitted"][0].data.data_points
    }
    assert {"accepted", "duplicate", "rejected_invalid"} <= submitted
    buckets = found["trawl.fetch.duration"][0].data.data_points[0].explicit_bounds
    assert buckets[-1] == 120
    # jobs and queue waits run far longer than one fetch: their own buckets, not a view's
    job_buckets = found["trawl.job.duration"][0].data.data_points[0].explicit_bounds
    assert tuple(job_buckets) == LONG_SECONDS_BUCKETS


async def _stale_running_task(stack: Stack, site: TargetSite) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from app.db.base import utcnow
    from app.job.models import Task

    r = await stack.client.post("/v1/jobs", json=job_body([site.url("/page/reap")]))
    job = await wait_job(stack.client, r.json()["id"])
    async with stack.worker.db.transaction() as session:
        await session.execute(
            update(Task)
            .where(Task.job_id == job["id"])
            .values(status="running", worker_id="gone", heartbeat_at=utcnow() - timedelta(hours=1))
        )


async def test_errors_are_grouped_and_regressions_seen(stack: Stack, telemetry: Telemetry) -> None:
    # an earlier test of this module may have hit the route already: count from where it is
    before = [
        g["count"]
        for g in (await stack.client.get("/v1/errors")).json()
        if g["last_context"].get("route") == "/test/boom"
    ]
    baseline = before[0] if before else 0
    for i in range(3):
        r = await stack.client.get(
            "/test/boom", params={"msg": f"value-{i}"}, headers={"x-request-id": f"req-{i}"}
        )
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        assert "value-" not in r.text  # no internals in the response
        assert r.headers["x-request-id"] == f"req-{i}"

    async def flushed() -> dict[str, Any]:
        groups = (await stack.client.get("/v1/errors")).json()
        boom = [g for g in groups if g["last_context"].get("route") == "/test/boom"]
        assert len(boom) == 1 and boom[0]["count"] >= baseline + 3, boom
        return dict(boom[0])

    group = await eventually(flushed, what="the error group flushed")
    assert group["status"] == "open"
    assert group["error_type"] == "RuntimeError"
    assert group["last_context"]["route"] == "/test/boom"
    assert group["last_context"]["request_id"] == "req-2"
    assert group["last_context"]["api_key_id"].startswith("key_")
    assert len(group["sample_trace_id"]) == 32
    spans = telemetry.finished()
    server = [s for s in spans if s.name == "GET /test/boom"]
    assert server and all(s.status.status_code.name == "ERROR" for s in server)
    events = [e for s in server for e in s.events if e.name == "exception"]
    assert events and all("exception.stacktrace" in e.attributes for e in events)
    assert {
        s.attributes.get("trawl.error.group") or e.attributes.get("trawl.error.group")
        for s in server
        for e in s.events
        if e.name == "exception"
    } == {group["key"]}
    resolved = await stack.client.post(f"/v1/errors/{group['key']}/resolve")
    assert resolved.json()["status"] == "resolved"
    await stack.client.get("/test/boom")

    async def reopened() -> dict[str, Any]:
        again = (await stack.client.get("/v1/errors", params={"status": "open"})).json()
        found = [g for g in again if g["key"] == group["key"]]
        assert len(found) == 1, "the group is not open again yet"
        return dict(found[0])

    assert (await eventually(reopened, what="the group reopened"))["regressions"] == 1
    kinds = {
        dict(p.attributes)["trawl.error.kind"]
        for p in _metrics(telemetry.reader)["trawl.errors.groups"][0].data.data_points
    }
    assert kinds == {"new", "regression"}
    non_admin = (await stack.client.post("/v1/api-keys", json={"name": "e"})).json()["key"]
    r = await stack.client.get("/v1/errors", headers={"authorization": f"Bearer {non_admin}"})
    assert r.status_code == 403


async def test_logs_are_json_with_trace_ids_of_exported_spans(
    stack: Stack, telemetry: Telemetry, site: TargetSite, capsys: pytest.CaptureFixture[str]
) -> None:
    otel.configure_logging("INFO")  # bind the JSON handler to this test's captured stdout
    r = await stack.client.post(
        "/v1/jobs", json=job_body([site.url("/page/logs")]), headers={"x-request-id": "log-req-1"}
    )
    job_id = r.json()["id"]
    await wait_job(stack.client, job_id)
    captured: list[str] = []

    def settle_logged() -> bool:
        captured.append(capsys.readouterr().out)
        return any("task attempt settled" in line and job_id in line for line in captured)

    try:
        await eventually(settle_logged, what="the settle log line")
    finally:
        # capsys closes its stream after the test: later lines go to the process's stdout
        otel.configure_logging("INFO", stream=sys.__stdout__)
    out = "".join(captured)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert records
    for rec in records:
        assert {"@timestamp", "log.level", "message", "service.name"} <= rec.keys()
    settled = [
        rec
        for rec in records
        if rec["message"] == "task attempt settled" and rec.get("trawl.job.id") == job_id
    ]
    assert settled and settled[0]["trawl.task.id"].startswith("tsk_")
    assert settled[0]["trawl.outcome"] == "success" and settled[0]["trawl.task.attempt"] == 1
    assert "outcome" not in settled[0] and "attempt" not in settled[0]
    assert settled[0]["http.request.id"] == "log-req-1"  # carried through the queue message
    trace_ids = {format(s.context.trace_id, "032x") for s in telemetry.finished()}
    assert settled[0]["trace.id"] in trace_ids
    assert settled[0]["span.id"]


async def test_every_attempt_logs_the_submitting_request_id(
    stack: Stack, telemetry: Telemetry, site: TargetSite
) -> None:
    """The retry's message is sent again by the dispatcher, without the request's context: the
    request id comes from the job row (a deferred task's later attempt is the same case)."""
    path = f"/flaky/rid-{uuid.uuid4().hex[:6]}?fail=1"
    r = await stack.client.post(
        "/v1/jobs",
        json=job_body([site.url(path)], options={"max_retries": 2}),
        headers={"x-request-id": "rid-retried-1"},
    )
    job_id = r.json()["id"]
    await wait_job(stack.client, job_id)

    def both_settled() -> list[dict[str, Any]]:
        telemetry.tel.force_flush(5.0)
        found = [
            dict(rec.log_record.attributes or {})
            for rec in telemetry.logs.get_finished_logs()
            if rec.log_record.body == "task attempt settled"
            and (rec.log_record.attributes or {}).get("trawl.job.id") == job_id
        ]
        return found if {a["trawl.task.attempt"] for a in found} >= {1, 2} else []

    settled = await eventually(both_settled, what="both attempts' settle records")
    assert {a["trawl.outcome"] for a in settled} >= {"success"}
    assert [a.get("http.request.id") for a in settled] == ["rid-retried-1"] * len(settled)


async def test_cardinality_attack_leaves_series_bounded(
    stack: Stack, telemetry: Telemetry, site: TargetSite
) -> None:
    rnd = random.Random(7)
    for _ in range(400):
        await stack.client.get(
            f"/v1/nope/{uuid.uuid4().hex}", headers={"host": f"h{rnd.randrange(10**9)}.example"}
        )
    for _ in range(30):
        await stack.client.get("/test/boom", params={"msg": uuid.uuid4().hex})
    urls = [f"http://127.0.0.{i}:{closed_port()}/x{i}" for i in range(2, 60)]
    r = await stack.client.post(
        "/v1/jobs", json=job_body(urls, options={"max_retries": 0, "timeout_s": 1})
    )
    await wait_job(stack.client, r.json()["id"], timeout=60)
    found = _metrics(telemetry.reader)
    for name, metrics in found.items():
        series = {
            tuple(sorted(dict(p.attributes or {}).items()))
            for m in metrics
            for p in m.data.data_points
        }
        assert len(series) <= 40, (name, len(series))
        for attrs in series:
            for _, value in attrs:
                text = str(value)
                # no attacked target host (127.0.0.2-59) or the site's port, no Host header
                assert not re.search(r"127\.0\.0\.([2-9]|[1-5][0-9])\b", text), (name, attrs)
                assert f":{site.port}" not in text and ".example" not in text, (name, attrs)
                assert "nope/" not in text and not re.search(r"(job|tsk|key)_[0-9a-z]{26}", text)


async def test_webhook_delivered_by_the_worker_signed_and_traced(
    stack: Stack, telemetry: Telemetry, site: TargetSite
) -> None:
    from tests.support.webhook_receiver import WebhookReceiver, verify

    receiver = WebhookReceiver().start()
    try:
        secret = (await stack.client.post("/v1/webhook-secret/rotate")).json()["secret"]
        r = await stack.client.post(
            "/v1/jobs",
            json=job_body(
                [site.url("/page/hook")], webhook_url=receiver.url("/ok"), metadata={"o": "1"}
            ),
        )
        job_id = r.json()["id"]
        await wait_job(stack.client, job_id)
        [hit] = await eventually(lambda: receiver.hits("/ok"), 15, what="the webhook delivery")
        event = verify(secret, hit)  # an independent Standard Webhooks verifier
        assert event["type"] == "job.completed" and event["data"]["job_id"] == job_id
        for name in ("traceparent", "tracestate", "baggage", "x-request-id", "authorization"):
            assert name not in {k.lower() for k in hit.headers}

        async def recorded() -> bool:  # the receiver answered; the attempt is being recorded
            listed = (await stack.client.get(f"/v1/jobs/{job_id}/webhook-deliveries")).json()
            return bool(listed["items"][0]["status"] == "succeeded")

        await eventually(recorded, 15, what="the delivery recorded as succeeded")

        def delivered_span() -> list[ReadableSpan]:
            spans = telemetry.finished()
            names = {s.name for s in spans if s.attributes.get("trawl.job.id") == job_id}
            return spans if "trawl.webhook deliver" in names else []

        spans = await eventually(delivered_span, what="the delivery's span")
        stream = f"{stack.settings.redis_prefix}:tasks"
        # the attempt that continues the submitting request's trace (a message the dispatcher
        # sends again later, at least once, starts a trace of its own, linked)
        consumers = [
            s
            for s in spans
            if s.name == f"process {stream}"
            and s.attributes.get("trawl.job.id") == job_id
            and s.parent is not None
        ]
        assert len({s.context.trace_id for s in consumers}) == 1, consumers
        consumer = consumers[0]
        request_trace = _trace(spans, consumer.context.trace_id)
        assert [s.name for s in request_trace if s.parent is None] == ["POST /v1/jobs"]
        deliver = _one(spans, "trawl.webhook deliver", **{"trawl.job.id": job_id})
        assert deliver.parent is None
        assert [link.context.trace_id for link in deliver.links] == [consumer.context.trace_id]
        children = [s for s in spans if s.parent and s.parent.span_id == deliver.context.span_id]
        [post] = [s for s in children if s.name == "POST"]
        assert post.kind == SpanKind.CLIENT
        assert post.attributes["http.response.status_code"] == 200
    finally:
        receiver.stop()


@pytest.mark.parametrize("trust", [False, True])
async def test_trust_traceparent_setting_reaches_the_middleware(
    settings: Settings, trust: bool
) -> None:
    from otel.asgi import TelemetryMiddleware

    app = create_app(settings.model_copy(update={"trust_traceparent": trust}))
    [middleware] = [m for m in app.user_middleware if m.cls is TelemetryMiddleware]
    assert middleware.kwargs["trust_incoming"] is trust
