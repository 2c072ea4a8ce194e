"""Webhooks: outbox with the job change, Standard Webhooks signatures checked by an independent
verifier, retries, dead-lettering, 410, 3xx, redelivery, crash recovery, secret rotation."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import select, text

from app.db import Database
from app.db.base import utcnow
from app.db.migrate import upgrade
from app.ids import new_id
from app.job import events
from app.job.models import Job, JobStatus
from app.security.ssrf import SsrfPolicy
from app.settings import Settings
from app.webhook import repository
from app.webhook.dispatcher import WebhookDispatcher
from app.webhook.metrics import WebhookMetrics
from app.webhook.models import EventType, WebhookAttempt, WebhookDelivery
from app.webhook.service import outbox_check
from tests.support.config import make_settings
from tests.support.databases import Databases
from tests.support.jobs import job_body, wait_job
from tests.support.target_site import TargetSite
from tests.support.wait import eventually
from tests.support.webhook_receiver import WebhookReceiver, verify

pytestmark = pytest.mark.asyncio(loop_scope="session")


# -- fixtures -------------------------------------------------------------------------------

FAST = {
    "webhook_retry_schedule_s": [0.05, 0.2, 0.6],
    "webhook_retry_jitter": 0.1,
    "webhook_timeout_s": 0.5,
    "webhook_sending_timeout_s": 0.3,
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def wsettings(database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url, redis_url, **FAST)


@pytest_asyncio.fixture(loop_scope="session")
async def db(wsettings: Settings) -> AsyncIterator[Database]:
    database = Database(wsettings.sqlalchemy_url)
    yield database
    await database.dispose()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest_asyncio.fixture(loop_scope="session")
async def dispatcher(
    db: Database, wsettings: Settings, reader: InMemoryMetricReader
) -> AsyncIterator[WebhookDispatcher]:
    meter = MeterProvider(metric_readers=[reader]).get_meter("trawl")
    d = WebhookDispatcher(db, wsettings, metrics=WebhookMetrics(meter))
    yield d
    await d.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(
    app: Any, admin_client: httpx.AsyncClient
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """(client, api key id, webhook secret) for a fresh API key."""
    created = await admin_client.post("/v1/api-keys", json={"name": f"w-{uuid.uuid4().hex[:6]}"})
    body = created.json()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://trawl.test",
        headers={"authorization": f"Bearer {body['key']}"},
    ) as c:
        rotated = await c.post("/v1/webhook-secret/rotate")
        assert rotated.status_code == 200, rotated.text
        yield c, body["id"], rotated.json()["secret"]


async def finished_job(db: Database, key_id: str, url: str, status: str = "completed") -> str:
    """A job turns terminal and its event is written in the same transaction (the outbox)."""
    async with db.transaction() as session:
        job = Job(
            id=new_id("job"),
            api_key_id=key_id,
            status=status,
            priority=1,
            request_hash="0" * 64,
            extract={"fields": {}},
            options={},
            webhook_url=url,
            client_metadata={"order": "A-1"},
            total_tasks=1,
            succeeded_tasks=1,
            finished_at=utcnow(),
        )
        session.add(job)
        await session.flush()
        await events.enqueue(session, job, EventType(f"job.{status}"))
    return job.id


async def deliveries(db: Database, job_id: str) -> list[WebhookDelivery]:
    async with db.session() as session:
        rows = await session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.id)
        )
        return list(rows.scalars())


async def attempts(db: Database, delivery_id: str) -> list[WebhookAttempt]:
    async with db.session() as session:
        return (await repository.attempts_of(session, [delivery_id])).get(delivery_id, [])


async def drive(
    dispatcher: WebhookDispatcher, db: Database, job_id: str, timeout: float = 5
) -> WebhookDelivery:
    """Run the dispatcher until the job's delivery reaches a final status."""

    async def final() -> WebhookDelivery | None:
        await dispatcher.run_once()
        [d] = await deliveries(db, job_id)
        return d if d.status in ("succeeded", "dead", "disabled") else None

    delivery: WebhookDelivery = await eventually(
        final, timeout, what=f"the delivery of {job_id} to be final", interval=0.02
    )
    return delivery


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        p
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


# -- tests ----------------------------------------------------------------------------------

ALLOWED_HEADERS = {
    "host",
    "accept",
    "accept-encoding",
    "connection",
    "user-agent",
    "content-type",
    "content-length",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}


async def test_signed_delivery_verified_independently_without_trace_context(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
    reader: InMemoryMetricReader,
) -> None:
    _, key_id, secret = tenant
    path = f"/ok/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path))
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("worker loop") as span:  # an active, valid trace context
        assert span.get_span_context().is_valid
        final = await drive(dispatcher, db, job_id)
    assert final.status == "succeeded" and final.attempts == 1
    [got] = receiver.hits(path)
    body = verify(secret, got)
    assert got.headers["webhook-id"] == final.id
    assert set(got.headers) <= ALLOWED_HEADERS, set(got.headers) - ALLOWED_HEADERS
    assert got.body.decode() == final.body  # the frozen body, byte for byte
    assert body["type"] == "job.completed"
    assert body["data"]["job_id"] == job_id and body["data"]["status"] == "completed"
    assert body["data"]["results_url"] == f"/v1/jobs/{job_id}/results"
    assert body["data"]["metadata"] == {"order": "A-1"}
    assert body["data"]["progress"]["succeeded"] == 1
    outcomes = {
        p.attributes["trawl.webhook.outcome"]: p.value
        for p in _points(reader, "trawl.webhook.attempts")
    }
    assert outcomes == {"success": 1}
    finals = {
        p.attributes["trawl.webhook.status"]: p.value
        for p in _points(reader, "trawl.webhook.deliveries")
    }
    assert finals == {"succeeded": 1}


async def test_retries_back_off_then_dead_letter(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
    reader: InMemoryMetricReader,
) -> None:
    _, key_id, secret = tenant
    path = f"/fail/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path), "failed")
    final = await drive(dispatcher, db, job_id)
    assert final.status == "dead" and final.attempts == 4
    assert final.last_status_code == 500
    log = await attempts(db, final.id)
    assert [a.outcome for a in log] == ["http_error"] * 4
    gaps = [(a.next_attempt_at - a.started_at).total_seconds() for a in log[:3]]
    assert gaps[0] < gaps[1] < gaps[2]  # the schedule grows: ~0.05, ~0.2, ~0.6 s
    assert log[3].next_attempt_at is None
    hits = receiver.hits(path)
    assert len(hits) == 4 and {h.headers["webhook-id"] for h in hits} == {final.id}
    for hit in hits:
        verify(secret, hit)
    async with db.session() as session:
        assert (await repository.backlog(session))["dead"] >= 1
    finals = {
        p.attributes["trawl.webhook.status"]: p.value
        for p in _points(reader, "trawl.webhook.deliveries")
    }
    assert finals == {"dead": 1}


async def test_the_outbox_check_refreshes_the_backlog_gauge(
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
    reader: InMemoryMetricReader,
) -> None:
    """Every run of the webhook_outbox health check (the API refreshes it in the background)
    reports what it counted on trawl.webhook.backlog: the dashboards' pending deliveries."""
    metrics = WebhookMetrics(MeterProvider(metric_readers=[reader]).get_meter("trawl"))
    check = outbox_check(db, max_pending=1000, metrics=metrics)
    assert _points(reader, "trawl.webhook.backlog") == []  # nothing before the first run
    _, key_id, _ = tenant
    await finished_job(db, key_id, receiver.url(f"/ok/{uuid.uuid4().hex}"))
    result = await check()
    backlog = {
        p.attributes["trawl.webhook.status"]: p.value
        for p in _points(reader, "trawl.webhook.backlog")
    }
    assert backlog == {status: result.data[status] for status in ("pending", "sending", "dead")}
    assert backlog["pending"] >= 1
    await finished_job(db, key_id, receiver.url(f"/ok/{uuid.uuid4().hex}"))
    await check()
    again = {
        p.attributes["trawl.webhook.status"]: p.value
        for p in _points(reader, "trawl.webhook.backlog")
    }
    assert again["pending"] == backlog["pending"] + 1


async def test_gone_disables_the_endpoint(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
) -> None:
    _, key_id, _ = tenant
    url = receiver.url(f"/gone/{uuid.uuid4().hex}")
    first = await drive(dispatcher, db, await finished_job(db, key_id, url))
    assert first.status == "disabled" and first.last_status_code == 410 and first.attempts == 1
    later = await finished_job(db, key_id, url)
    [d] = await deliveries(db, later)
    assert d.status == "disabled"  # straight to disabled, never sent
    await dispatcher.run_once()
    assert len(receiver.hits(httpx.URL(url).path)) == 1


async def test_redirect_is_a_failure_and_not_followed(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
) -> None:
    _, key_id, _ = tenant
    path = f"/redirect/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path))
    before = len(receiver.hits("/ok"))
    await dispatcher.run_once()
    [d] = await deliveries(db, job_id)
    assert d.status == "pending" and d.last_status_code == 302
    assert [a.outcome for a in await attempts(db, d.id)] == ["redirect"]
    assert len(receiver.hits("/ok")) == before
    assert (await drive(dispatcher, db, job_id)).status == "dead"


async def test_timeout_is_recorded(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
) -> None:
    _, key_id, _ = tenant
    job_id = await finished_job(db, key_id, receiver.url(f"/slow/{uuid.uuid4().hex}?delay=1"))
    await dispatcher.run_once()
    [d] = await deliveries(db, job_id)
    assert d.status == "pending" and d.last_error_type is not None
    assert [a.outcome for a in await attempts(db, d.id)] == ["timeout"]
    await drive(dispatcher, db, job_id, timeout=10)


async def test_redelivery_keeps_the_id_with_a_new_signature(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
    client: httpx.AsyncClient,
) -> None:
    owner, key_id, secret = tenant
    path = f"/ok/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path))
    first = await drive(dispatcher, db, job_id)
    sent_at = int(time.time())
    # a new second: a new webhook-timestamp
    await eventually(lambda: int(time.time()) > sent_at, timeout=2, what="the next second")
    assert (await client.post(f"/v1/webhook-deliveries/{first.id}/redeliver")).status_code == 404
    r = await owner.post(f"/v1/webhook-deliveries/{first.id}/redeliver")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    again = await drive(dispatcher, db, job_id)
    assert again.status == "succeeded" and again.attempts == 2
    one, two = receiver.hits(path)
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == first.id
    assert one.headers["webhook-timestamp"] != two.headers["webhook-timestamp"]
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]
    assert one.body == two.body
    verify(secret, two)
    listed = (await owner.get(f"/v1/jobs/{job_id}/webhook-deliveries")).json()["items"]
    assert [d["id"] for d in listed] == [first.id]
    assert [a["outcome"] for a in listed[0]["attempt_log"]] == ["success", "success"]
    assert (await client.get(f"/v1/jobs/{job_id}/webhook-deliveries")).status_code == 404


async def test_outbox_survives_a_crash_between_commit_and_send(
    db: Database,
    wsettings: Settings,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
) -> None:
    _, key_id, secret = tenant
    # 1. committed, never sent: a brand-new dispatcher (a restarted process) sends it
    path = f"/ok/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path))
    fresh = WebhookDispatcher(db, wsettings)
    try:
        assert (await drive(fresh, db, job_id)).status == "succeeded"
    finally:
        await fresh.aclose()
    verify(secret, receiver.hits(path)[0])
    # 2. claimed by a dispatcher that died mid-send: reclaimed after the sending timeout
    path = f"/ok/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path))
    async with db.transaction() as session:
        claimed = await repository.claim_due(
            session, now=utcnow(), sending_before=utcnow(), limit=1000, token="dead-worker"
        )
    assert job_id in {c.job_id for c in claimed}
    [stuck] = await deliveries(db, job_id)
    assert stuck.status == "sending"
    # a sending timeout long enough that "not yet stale" holds on a loaded machine
    other = WebhookDispatcher(db, wsettings.model_copy(update={"webhook_sending_timeout_s": 1.0}))
    try:
        await other.run_once()
        assert (await deliveries(db, job_id))[0].status == "sending"  # not yet stale
        # reclaimed once its claim is older than the sending timeout
        assert (await drive(other, db, job_id)).status == "succeeded"
    finally:
        await other.aclose()
    assert len(receiver.hits(path)) == 1


async def test_secret_rotation_signs_with_both_during_overlap(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
) -> None:
    owner, key_id, old = tenant
    meta = (await owner.get("/v1/webhook-secret")).json()
    assert meta["has_secret"] is True and "secret" not in meta
    rotated = (await owner.post("/v1/webhook-secret/rotate")).json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old and rotated["previous_expires_at"]
    path = f"/ok/{uuid.uuid4().hex}"
    await drive(dispatcher, db, await finished_job(db, key_id, receiver.url(path)))
    [got] = receiver.hits(path)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify(new, got)
    verify(old, got)
    with pytest.raises(ValueError):
        verify("whsec_" + base64.b64encode(b"x" * 32).decode(), got)


async def test_webhook_to_a_private_address_is_refused_at_delivery(
    db: Database,
    wsettings: Settings,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
) -> None:
    _, key_id, _ = tenant
    path = f"/ok/{uuid.uuid4().hex}"
    job_id = await finished_job(db, key_id, receiver.url(path))
    strict = WebhookDispatcher(db, wsettings, policy=SsrfPolicy(allow_private=False))
    try:
        final = await drive(strict, db, job_id)
    finally:
        await strict.aclose()
    assert final.status == "dead" and final.last_error_type == "SsrfBlocked"
    assert receiver.hits(path) == []


async def test_job_events_from_the_worker_and_cancel(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
    site: TargetSite,
    worker: Any,
) -> None:
    owner, _, secret = tenant
    path = f"/ok/{uuid.uuid4().hex}"
    r = await owner.post(
        "/v1/jobs", json=job_body([site.url("/page/3")], webhook_url=receiver.url(path))
    )
    job = await wait_job(owner, r.json()["id"])
    assert job["status"] == "completed"
    [d] = await deliveries(db, job["id"])  # written with the job's final transition
    assert d.event_type == "job.completed"
    await drive(dispatcher, db, job["id"])
    body = verify(secret, receiver.hits(path)[0])
    assert body["data"]["progress"]["succeeded"] == 1
    # cancel: the job becomes cancelled inside the cancel transaction, with its event
    path = f"/ok/{uuid.uuid4().hex}"
    r = await owner.post(
        "/v1/jobs",
        json=job_body([site.url("/slow?delay=0.5")] * 3, webhook_url=receiver.url(path)),
    )
    await owner.post(f"/v1/jobs/{r.json()['id']}/cancel")
    job = await wait_job(owner, r.json()["id"])
    assert job["status"] == "cancelled"
    [d] = await deliveries(db, job["id"])
    assert d.event_type == "job.cancelled"
    assert JobStatus(job["status"]).terminal


async def test_clients_choose_events_and_job_started_on_request(
    dispatcher: WebhookDispatcher,
    db: Database,
    receiver: WebhookReceiver,
    tenant: tuple[httpx.AsyncClient, str, str],
    site: TargetSite,
    worker: Any,
) -> None:
    owner, _, secret = tenant
    path = f"/ok/{uuid.uuid4().hex}"
    r = await owner.post(
        "/v1/jobs",
        json=job_body(
            [site.url("/page/5")],
            webhook_url=receiver.url(path),
            webhook_events=["job.started", "job.completed"],
        ),
    )
    assert r.status_code == 202, r.text
    job = await wait_job(owner, r.json()["id"])
    events = [d.event_type for d in await deliveries(db, job["id"])]
    assert sorted(events) == ["job.completed", "job.started"]

    async def both_sent() -> bool:
        await dispatcher.run_once()
        return len(receiver.hits(path)) >= 2

    await eventually(both_sent, 5, what="job.started and job.completed delivered")
    bodies = [verify(secret, hit) for hit in receiver.hits(path)]
    assert sorted(b["type"] for b in bodies) == ["job.completed", "job.started"]
    started = next(b for b in bodies if b["type"] == "job.started")
    assert started["data"]["status"] == "running"
    # only job.failed asked for: a completed job sends nothing
    r = await owner.post(
        "/v1/jobs",
        json=job_body(
            [site.url("/page/6")], webhook_url=receiver.url(path), webhook_events=["job.failed"]
        ),
    )
    job = await wait_job(owner, r.json()["id"])
    assert job["status"] == "completed"
    assert await deliveries(db, job["id"]) == []
    # events without a URL, or unknown events, are refused at submit
    bad = await owner.post(
        "/v1/jobs", json=job_body([site.url("/page/6")], webhook_events=["job.started"])
    )
    assert bad.status_code == 422 and "webhook_url" in bad.text
    bad = await owner.post(
        "/v1/jobs",
        json=job_body(
            [site.url("/page/6")], webhook_url=receiver.url(path), webhook_events=["job.paused"]
        ),
    )
    assert bad.status_code == 422


async def test_deliveries_written_before_the_traceparent_column_link_to_their_job(
    databases: Databases,
) -> None:
    """Migration 0004: a delivery row gets its job's traceparent, so its span links to it."""
    url = await databases.anew("0003")
    traceparent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    db = Database(url)
    try:
        async with db.transaction() as session:
            now = utcnow()
            for statement, values in (
                (
                    "INSERT INTO api_key (id, name, prefix, key_hash, scopes, created_at)"
                    " VALUES ('key_1', 'k', 'p', :hash, '[]', :now)",
                    {"hash": "0" * 64},
                ),
                (
                    "INSERT INTO job (id, api_key_id, status, priority, request_hash, extract,"
                    " options, client_metadata, total_tasks, succeeded_tasks, failed_tasks,"
                    " cancelled_tasks, traceparent, created_at) VALUES ('job_1', 'key_1',"
                    " 'completed', 1, :hash, '{}', '{}', '{}', 1, 1, 0, 0, :tp, :now)",
                    {"hash": "0" * 64, "tp": traceparent},
                ),
                (
                    "INSERT INTO webhook_delivery (id, api_key_id, job_id, event_type, url, body,"
                    " status, attempts, cycle_offset, next_attempt_at, created_at, updated_at)"
                    " VALUES ('msg_1', 'key_1', 'job_1', 'job.completed', 'http://r/', '{}',"
                    " 'pending', 0, 0, :now, :now, :now)",
                    {},
                ),
            ):
                await session.execute(text(statement), {"now": now, **values})
        await db.dispose()
        await asyncio.to_thread(upgrade, url)
        async with db.session() as session:
            delivery = await session.get(WebhookDelivery, "msg_1")
        assert delivery is not None and delivery.traceparent == traceparent
    finally:
        await db.dispose()
