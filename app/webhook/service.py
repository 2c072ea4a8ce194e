"""Webhook deliveries as the API sees them, and the outbox write that the job domain calls
in the transaction of the state change it reports.

``redeliver`` and ``rotate_secret`` commit: each is one unit of work (docs/architecture.md).
``enqueue_event`` never does: it writes in its caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiKey
from app.db import Database
from app.db.base import utcnow
from app.health import Check, CheckResult, degraded, healthy
from app.ids import new_id
from app.security.secretbox import SecretBox
from app.webhook import repository, signing
from app.webhook.errors import DeliveryInProgress, DeliveryNotFound
from app.webhook.metrics import WebhookMetrics, default_metrics
from app.webhook.models import DeliveryStatus, EventType, WebhookAttempt, WebhookDelivery
from app.webhook.schemas import (
    WebhookAttemptRead,
    WebhookDeliveryRead,
    WebhookSecretRead,
    WebhookSecretRotated,
)


async def enqueue_event(
    session: AsyncSession,
    *,
    api_key_id: str,
    job_id: str,
    url: str,
    event_type: EventType,
    body: str,
    traceparent: str | None,
    now: datetime | None = None,
) -> WebhookDelivery:
    """Add the outbox row for one event, WITHOUT committing: the caller commits it with the
    state change it reports. ``body`` is frozen here: retries and redeliveries send these exact
    bytes. An endpoint disabled by a 410 gets the row as ``disabled`` (never sent)."""
    now = now or utcnow()
    disabled = await repository.is_disabled(session, api_key_id, url)
    delivery = WebhookDelivery(
        id=new_id("msg"),
        api_key_id=api_key_id,
        job_id=job_id,
        event_type=event_type,
        url=url,
        body=body,
        traceparent=traceparent,
        status=DeliveryStatus.DISABLED if disabled else DeliveryStatus.PENDING,
        attempts=0,
        cycle_offset=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    return delivery


def _attempt_read(a: WebhookAttempt) -> WebhookAttemptRead:
    return WebhookAttemptRead(
        number=a.number,
        outcome=a.outcome,
        status_code=a.status_code,
        error_type=a.error_type,
        duration_ms=a.duration_ms,
        started_at=a.started_at,
        next_attempt_at=a.next_attempt_at,
    )


def to_read(d: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryRead:
    waiting = d.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    return WebhookDeliveryRead(
        id=d.id,
        job_id=d.job_id,
        event_type=d.event_type,
        url=d.url,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if waiting else None,
        last_status_code=d.last_status_code,
        last_error_type=d.last_error_type,
        last_attempt_at=d.last_attempt_at,
        delivered_at=d.delivered_at,
        created_at=d.created_at,
        attempt_log=[_attempt_read(a) for a in attempts],
    )


async def list_for_job(session: AsyncSession, job_id: str) -> list[WebhookDeliveryRead]:
    return [to_read(d, a) for d, a in await repository.for_job(session, job_id)]


async def redeliver(
    session: AsyncSession, delivery_id: str, api_key_id: str
) -> WebhookDeliveryRead:
    """Send again: same ``webhook-id`` and body, a new timestamp and signature, a new retry
    cycle. An endpoint disabled by 410 is re-enabled by this explicit request."""
    delivery = await repository.get_owned(session, delivery_id, api_key_id)
    if delivery is None:
        raise DeliveryNotFound(f"No webhook delivery with id {delivery_id!r}")
    if delivery.status == DeliveryStatus.SENDING:
        raise DeliveryInProgress("This delivery is being sent now; try again shortly.")
    if delivery.status == DeliveryStatus.DISABLED:
        await repository.enable_endpoint(session, api_key_id, delivery.url)
    now = utcnow()
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.claim_token = None
    delivery.claimed_at = None
    delivery.cycle_offset = delivery.attempts
    delivery.updated_at = now
    await session.commit()
    attempts = await repository.attempts_of(session, [delivery.id])
    return to_read(delivery, attempts.get(delivery.id, []))


def secret_read(key: ApiKey) -> WebhookSecretRead:
    now = utcnow()
    prev = key.webhook_secret_prev_expires_at
    return WebhookSecretRead(
        has_secret=key.webhook_secret_enc is not None,
        created_at=key.webhook_secret_created_at,
        previous_expires_at=prev if prev is not None and prev > now else None,
    )


async def rotate_secret(
    session: AsyncSession, box: SecretBox, key: ApiKey, overlap_s: float
) -> WebhookSecretRotated:
    """A new signing secret for ``key`` (the previous one signs too for ``overlap_s``)."""
    secret = signing.rotate(box, key, overlap_s)
    await session.commit()
    return WebhookSecretRotated(**secret_read(key).model_dump(), secret=secret)


def outbox_check(db: Database, *, max_pending: int, metrics: WebhookMetrics | None = None) -> Check:
    """Health of the webhook outbox: the backlog waiting to be sent, and what went dead. Each
    run also refreshes the ``trawl.webhook.backlog`` gauge (the API's health refresh runs it
    in the background, so the gauge reports without any probe)."""
    gauge = metrics or default_metrics()

    async def check() -> CheckResult:
        async with db.session() as session:
            counts = await repository.backlog(session)
        gauge.set_backlog(counts)
        data = {k: int(v) for k, v in counts.items()}
        if counts.get("pending", 0) > max_pending:
            return degraded(f"{counts['pending']} deliveries waiting (over {max_pending})", **data)
        return healthy(f"{counts.get('pending', 0)} waiting, {counts.get('dead', 0)} dead", **data)

    return check
