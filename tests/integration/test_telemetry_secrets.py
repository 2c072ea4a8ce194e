"""Secrets never reach telemetry, and errors carry their context (issue 8).

Every test plants a secret in a real code path - an API request, a worker task against the
loopback target site, a failing SQL statement, a proxy URL with credentials, a webhook URL with
a secret path, an unhandled error reported to Sentry - and then looks for it everywhere the
service reports: spans (attributes, events, status, links), log records sent over OTLP, JSON
lines on stdout and metric attributes. Each test also checks that the path it drove was
reported (redacted), so that "not found" cannot mean "not exercised".
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text, update

import otel
from app.api.deps import CurrentKey, ServicesDep
from app.job.models import Job
from app.main import create_app
from app.settings import Settings
from app.telemetry import errors as telemetry_errors
from app.worker import Worker
from otel import _setup
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.databases import Databases
from tests.support.forward_proxy import ForwardProxy
from tests.support.jobs import job_body, wait_job
from tests.support.net import closed_port
from tests.support.target_site import TargetSite
from tests.support.wait import eventually
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Letters and digits, 20 characters: shaped like a real token (a webhook path segment of this
# shape is masked; a plain word would not be).
PLANTED = "pl4nt" + uuid.uuid4().hex[:15]


@dataclass
class Sinks:
    tel: otel.Telemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs: InMemoryLogRecordExporter
    stdout: io.StringIO = field(default_factory=io.StringIO)

    def flush(self) -> None:
        assert self.tel.force_flush(5.0)

    def finished(self) -> list[ReadableSpan]:
        self.flush()
        return list(self.spans.get_finished_spans())

    def places(self) -> dict[str, str]:
        """Everything the service reported so far, as text, by where it went."""
        self.flush()
        out = {
            f"span {i} {s.name}": s.to_json() for i, s in enumerate(self.spans.get_finished_spans())
        }
        for i, rec in enumerate(self.logs.get_finished_logs()):
            out[f"otlp log {i}"] = rec.to_json()
        out["stdout"] = self.stdout.getvalue()
        data = self.reader.get_metrics_data()
        if data is not None:
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        attrs = [dict(p.attributes or {}) for p in metric.data.data_points]
                        out[f"metric {metric.name}"] = json.dumps(attrs, default=str)
        return out

    def assert_nowhere(self, *secrets: str) -> None:
        leaks = [
            (where, secret)
            for where, content in self.places().items()
            for secret in secrets
            if secret in content
        ]
        assert leaks == []


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
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
    yield Sinks(tel, spans, reader, logs)
    otel.configure_logging("INFO", stream=sys.__stdout__)  # back to the process's stdout
    _setup.reset()
    mp.undo()


@dataclass
class Stack:
    settings: Settings
    client: httpx.AsyncClient
    worker: Worker
    api_key: str


async def _boom(key: CurrentKey, msg: str = "kaboom") -> None:
    raise RuntimeError(f"upstream refused: {msg}")


async def _failing_sql(services: ServicesDep, key: CurrentKey, value: str) -> None:
    """A statement that fails with the caller's value as a bound parameter: PostgreSQL fails on
    the cast (asyncpg echoes the value), SQLite on the missing table (SQLAlchemy prints the
    parameters unless the engine hides them)."""
    async with services.db.session() as session:
        await session.execute(text("SELECT CAST(:v AS INTEGER)"), {"v": value})
        await session.execute(text("SELECT :v FROM no_such_table"), {"v": value})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(sinks: Sinks, databases: Databases, redis_url: str) -> AsyncIterator[Stack]:
    settings = make_settings(
        await databases.anew(),
        redis_url,
        domain_concurrency=1,
        domain_rate_per_s=50.0,
        politeness_max_wait_s=0.05,
        webhook_delivery_enabled=True,
        webhook_poll_interval_s=0.1,
        error_flush_interval_s=0.1,
        proxy_config_refresh_s=0.0,
    )
    app = create_app(settings)
    app.add_api_route("/test/boom", _boom, methods=["GET"])
    app.add_api_route("/test/sql", _failing_sql, methods=["GET"])
    async with app.router.lifespan_context(app):
        otel.configure_logging("INFO", stream=sinks.stdout)  # the lifespan set up stdout
        worker = Worker(settings, redis_url)
        running = asyncio.create_task(worker.run())
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://trawl.test",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as admin:
            created = await admin.post("/v1/api-keys", json={"name": "secrets"})
            api_key = created.json()["key"]
            admin.headers["authorization"] = f"Bearer {api_key}"
            yield Stack(settings, admin, worker, api_key)
        worker.stop()
        await asyncio.wait_for(running, 40)


async def _group(client: httpx.AsyncClient, **context: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        r = await client.get("/v1/errors", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        for group in r.json():
            if all(group["last_context"].get(k) == v for k, v in context.items()):
                return dict(group)
        return None

    found: dict[str, Any] = await eventually(find, 15, what=f"an error group with {context}")
    return found


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# --------------------------------------------------------------------------- API requests


async def test_api_request_secrets_reach_no_telemetry(stack: Stack, sinks: Sinks) -> None:
    r = await stack.client.get(
        "/v1/jobs",
        params={"api_key": PLANTED, "limit": 5},
        headers={"x-api-key": PLANTED, "cookie": f"session={PLANTED}"},
    )
    assert r.status_code == 200
    r = await stack.client.get("/v1/jobs", headers={"authorization": f"Bearer {PLANTED}"})
    assert r.status_code == 401
    spans = [s for s in sinks.finished() if s.name == "GET /v1/jobs"]
    assert len(spans) == 2  # both requests were traced
    sinks.assert_nowhere(PLANTED, stack.api_key, ADMIN_KEY)


async def test_unhandled_api_error_is_redacted_and_grouped_under_one_name(
    stack: Stack, sinks: Sinks
) -> None:
    proxy = f"http://scraper:{PLANTED}@10.0.0.1:3128"
    r = await stack.client.get(
        "/test/boom",
        params={"msg": f"via {proxy} with token={PLANTED}"},
        headers={"x-request-id": "rq-boom"},
    )
    assert r.status_code == 500 and PLANTED not in r.text
    group = await _group(stack.client, request_id="rq-boom")
    key = group["key"]
    # the error's context: the API key by id, the route, the request
    assert group["last_context"]["route"] == "/test/boom"
    assert group["last_context"]["api_key_id"].startswith("key_")
    [server] = [s for s in sinks.finished() if _attrs(s).get("http.request.id") == "rq-boom"]
    attrs = _attrs(server)
    assert attrs["trawl.api_key.id"] == group["last_context"]["api_key_id"]
    assert attrs["http.route"] == "/test/boom"
    # one name for the grouping key: span, exception event, stdout line, OTLP record, metric
    assert attrs["trawl.error.group"] == key
    [event] = [e for e in server.events if e.name == "exception"]
    event_attrs = dict(event.attributes or {})
    assert event_attrs["trawl.error.group"] == key
    assert event_attrs["exception.message"] == (
        "upstream refused: via http://***@10.0.0.1:3128 with token=***"
    )
    assert not any("group_key" in k for k in (*attrs, *event_attrs))
    lines = [json.loads(x) for x in sinks.stdout.getvalue().splitlines() if x.startswith("{")]
    [line] = [x for x in lines if x.get("http.request.id") == "rq-boom" and "error.type" in x]
    assert line["trawl.error.group"] == key and line["trawl.api_key.id"].startswith("key_")
    [record] = [
        rec.log_record
        for rec in sinks.logs.get_finished_logs()
        if (rec.log_record.attributes or {}).get("http.request.id") == "rq-boom"
        and "exception.type" in (rec.log_record.attributes or {})
    ]
    assert dict(record.attributes or {})["trawl.error.group"] == key
    errors = [
        dict(p.attributes or {})
        for rm in (sinks.reader.get_metrics_data() or _empty()).resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "trawl.errors"
        for p in m.data.data_points
    ]
    assert {"trawl.error.group": key}.items() <= next(
        e for e in errors if e["trawl.error.group"] == key
    ).items()
    sinks.assert_nowhere(PLANTED)


def _empty() -> Any:
    @dataclass
    class _Data:
        resource_metrics: tuple[Any, ...] = ()

    return _Data()


async def test_failing_sql_statement_shows_no_bound_value(stack: Stack, sinks: Sinks) -> None:
    r = await stack.client.get(
        "/test/sql", params={"value": PLANTED}, headers={"x-request-id": "rq-sql"}
    )
    assert r.status_code == 500
    group = await _group(stack.client, request_id="rq-sql")
    assert group["error_type"].startswith("sqlalchemy.exc.")
    [server] = [s for s in sinks.finished() if _attrs(s).get("http.request.id") == "rq-sql"]
    [event] = [e for e in server.events if e.name == "exception"]
    message = str(dict(event.attributes or {})["exception.message"])
    assert "[SQL: SELECT" in message  # the statement is reported, parameterised
    sinks.assert_nowhere(PLANTED)


# --------------------------------------------------------------------------- worker tasks


async def test_task_urls_and_headers_are_masked(
    stack: Stack, sinks: Sinks, site: TargetSite
) -> None:
    urls = [
        site.url(f"/page/sq1?api_key={PLANTED}&page=1"),
        f"http://scraper:{PLANTED}@127.0.0.1:{site.port}/page/sq2",
    ]
    body = job_body(urls, options={"headers": {"X-Api-Key": PLANTED, "Cookie": f"s={PLANTED}"}})
    r = await stack.client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert (await wait_job(stack.client, job_id))["status"] == "completed"
    spans = sinks.finished()
    consumers = [
        s
        for s in spans
        if s.name.startswith("process ") and _attrs(s).get("trawl.job.id") == job_id
    ]
    full = {str(_attrs(s)["url.full"]) for s in consumers}
    assert site.url("/page/sq1?api_key=***&page=1") in full
    assert f"http://***@127.0.0.1:{site.port}/page/sq2" in full
    fetched = {str(_attrs(s).get("url.full")) for s in spans if s.name == "GET"}
    assert site.url("/page/sq1?api_key=***&page=1") in fetched
    sinks.assert_nowhere(PLANTED)


async def test_worker_error_carries_job_task_and_domain(
    stack: Stack, sinks: Sinks, site: TargetSite
) -> None:
    """An unexpected error in a task attempt (here: a job whose stored extraction rules went
    bad) is grouped with the job, the task and the target domain, on the group and the span."""
    busy = await stack.client.post("/v1/jobs", json=job_body([site.url("/slow?delay=1.5")]))
    r = await stack.client.post("/v1/jobs", json=job_body([site.url("/page/bad-rules")]))
    job_id = r.json()["id"]
    async with stack.worker.db.transaction() as session:  # the slot is busy: the task waits
        bad = {"fields": {"title": {"type": "css"}}}  # no selector
        await session.execute(update(Job).where(Job.id == job_id).values(extract=bad))
    group = await _group(stack.client, job_id=job_id)
    context = group["last_context"]
    assert context["task_id"].startswith("tsk_")
    assert context["domain"] == f"127.0.0.1:{site.port}"
    assert context["worker_id"] == stack.worker.worker_id
    assert group["component"] == "worker" and group["error_type"] == "KeyError"
    spans = [s for s in sinks.finished() if _attrs(s).get("trawl.error.group") == group["key"]]
    assert spans
    attrs = _attrs(spans[0])
    assert attrs["trawl.job.id"] == job_id
    assert attrs["trawl.task.id"] == context["task_id"]
    assert attrs["url.domain"] == context["domain"]
    # repair the rules: the task is retried and completes
    async with stack.worker.db.transaction() as session:
        good = {"fields": {"title": {"selector": "h1.title"}}}
        await session.execute(update(Job).where(Job.id == job_id).values(extract=good))
    assert (await wait_job(stack.client, job_id, timeout=60))["status"] == "completed"
    await wait_job(stack.client, busy.json()["id"])


# --------------------------------------------------------------------------- proxies


async def test_proxy_credentials_reach_no_telemetry(
    stack: Stack, sinks: Sinks, site: TargetSite
) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    good = ForwardProxy("good", auth=("scraper", PLANTED)).start()
    try:
        pool = f"sec-{uuid.uuid4().hex[:6]}"
        for url in (
            good.url("scraper", PLANTED),
            f"http://scraper:{PLANTED}@127.0.0.1:{closed_port()}",
        ):
            r = await stack.client.post(
                "/v1/proxies", json={"pool": pool, "url": url}, headers=admin
            )
            assert r.status_code == 201, r.text
            assert PLANTED not in r.text
        urls = [site.url(f"/page/px{i}") for i in range(4)]
        r = await stack.client.post(
            "/v1/jobs", json=job_body(urls, options={"proxy_pool": pool, "max_retries": 3})
        )
        job = await wait_job(stack.client, r.json()["id"], timeout=60)
        assert job["status"] == "completed"
        assert sum(good.requests.values()) >= 4  # the pool's working proxy carried the fetches
    finally:
        good.stop()
    sinks.assert_nowhere(PLANTED)


# --------------------------------------------------------------------------- webhooks


async def test_webhook_secret_path_and_signing_secret_reach_no_telemetry(
    stack: Stack, sinks: Sinks, site: TargetSite
) -> None:
    receiver = WebhookReceiver().start()
    try:
        signing = (await stack.client.post("/v1/webhook-secret/rotate")).json()["secret"]
        hook = receiver.url(f"/hooks/{PLANTED}?token={PLANTED}")
        r = await stack.client.post(
            "/v1/jobs", json=job_body([site.url("/page/wh")], webhook_url=hook)
        )
        job_id = r.json()["id"]
        await wait_job(stack.client, job_id)

        async def delivered() -> bool:
            listed = (await stack.client.get(f"/v1/jobs/{job_id}/webhook-deliveries")).json()
            return bool(listed["items"]) and listed["items"][0]["status"] == "succeeded"

        await eventually(delivered, 15, what="the webhook delivery")
        assert receiver.hits(f"/hooks/{PLANTED}")
        posts = [
            s
            for s in sinks.finished()
            if s.name == "POST" and "/hooks/" in str(_attrs(s).get("url.full"))
        ]
        assert [str(_attrs(s)["url.full"]) for s in posts] == [receiver.url("/hooks/***?token=***")]
        sinks.assert_nowhere(PLANTED, signing)
    finally:
        receiver.stop()


# --------------------------------------------------------------------------- Sentry


def _envelopes(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    items = []
    for hit in receiver.hits("/api/"):
        body = hit.body
        encoding = hit.headers.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":  # sentry-sdk prefers brotli when the module is installed
            import brotli  # (make bench's extra brings it, with Scrapy)

            body = brotli.decompress(body)
        elif encoding:
            raise AssertionError(f"unexpected envelope encoding {encoding}")
        for line in body.decode().splitlines():
            doc = json.loads(line) if line.startswith("{") else None
            if isinstance(doc, dict) and "exception" in doc:
                items.append(doc)
    return items


async def test_sentry_gets_no_locals_and_scrubbed_messages(stack: Stack, sinks: Sinks) -> None:
    pytest.importorskip("sentry_sdk")
    receiver = WebhookReceiver().start()
    try:
        dsn = f"http://publickey@127.0.0.1:{receiver.port}/1"
        assert telemetry_errors.enable_sentry(dsn, "test", "0")
        import sentry_sdk

        options = sentry_sdk.get_client().options
        assert options["include_local_variables"] is False  # decrypted secrets live in locals
        assert options["before_send"] is not None and options["max_request_body_size"] == "never"
        # the route's frame holds the message, and the request's query, as local variables
        r = await stack.client.get(
            "/test/boom",
            params={"msg": f"proxy http://u:{PLANTED}@10.0.0.2:8080 password={PLANTED}"},
            headers={"x-request-id": "rq-sentry"},
        )
        assert r.status_code == 500
        sentry_sdk.flush(timeout=5)
        events = await eventually(lambda: _envelopes(receiver), 15, what="a Sentry event")
    finally:
        telemetry_errors.disable_sentry()
        receiver.stop()
    [event] = events
    [exc] = event["exception"]["values"]
    assert exc["type"] == "RuntimeError"
    assert exc["value"] == "upstream refused: proxy http://***@10.0.0.2:8080 password=***"
    frames = exc["stacktrace"]["frames"]
    assert frames and all("vars" not in f for f in frames)
    group = await _group(stack.client, request_id="rq-sentry")
    assert event["fingerprint"] == [group["key"]]
    raw = json.dumps(event)
    assert PLANTED not in raw and stack.api_key not in raw
    sinks.assert_nowhere(PLANTED)


# --------------------------------------------------------------------------- engines


async def test_every_engine_hides_bound_parameters(settings: Settings) -> None:
    """SQLAlchemy prints a failed statement's parameters in the error unless the engine hides
    them: every engine the service creates does (the app's, the health probe's, migrations')."""
    import ast
    from pathlib import Path

    from app.db import Database
    from app.health.checks import DatabaseProbe

    db, probe = Database(settings.sqlalchemy_url), DatabaseProbe(settings.sqlalchemy_url, 1.0)
    try:
        assert db.engine.sync_engine.hide_parameters and probe.engine.sync_engine.hide_parameters
    finally:
        await db.dispose()
        await probe.engine.dispose()
    root = Path(__file__).resolve().parents[2] / "app"
    calls = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "create_engine",
                "create_async_engine",
            ):
                kwargs = {k.arg: k.value for k in node.keywords}
                hidden = kwargs.get("hide_parameters")
                calls.append(
                    (str(path.relative_to(root)), isinstance(hidden, ast.Constant) and hidden.value)
                )
    assert calls and all(hidden for _, hidden in calls), calls
