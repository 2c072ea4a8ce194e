"""A job's webhook events: which ones its client chose, and the JSON body each one carries.

They are written to the webhook outbox (``app.webhook.service.enqueue_event``) in the
transaction that changes the job's status, never committed here: the event exists exactly
when the change does. The webhook dispatcher delivers them (docs/webhooks.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.job.models import Job, JobStatus
from app.webhook import service as webhook_service
from app.webhook.models import EventType, WebhookDelivery

#: The event each terminal status sends; without a choice a job gets all three.
TERMINAL_EVENTS = {
    JobStatus.COMPLETED: EventType.JOB_COMPLETED,
    JobStatus.FAILED: EventType.JOB_FAILED,
    JobStatus.CANCELLED: EventType.JOB_CANCELLED,
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def event_body(job: Job, event_type: str, now: datetime) -> str:
    """The JSON body, frozen at enqueue: retries and redeliveries send these exact bytes."""
    payload: dict[str, Any] = {
        "type": event_type,
        "timestamp": _iso(now),
        "data": {
            "job_id": job.id,
            "status": job.status,
            "progress": {
                "total": job.total_tasks,
                "succeeded": job.succeeded_tasks,
                "failed": job.failed_tasks,
                "cancelled": job.cancelled_tasks,
                "pending": job.pending_tasks,
            },
            "results_url": f"/v1/jobs/{job.id}/results",
            "metadata": job.client_metadata,
            "finished_at": _iso(job.finished_at),
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def wants(job: Job, event: str) -> bool:
    """The events the client chose at submit (``webhook_events``); by default the terminal ones.
    Jobs stored before the choice existed have none recorded: terminal events."""
    chosen = job.options.get("webhook_events") or [e.value for e in TERMINAL_EVENTS.values()]
    return event in chosen


async def enqueue(session: AsyncSession, job: Job, event: EventType) -> WebhookDelivery | None:
    """Write ``event`` of ``job`` to the outbox in the caller's transaction; ``None`` when the
    job has no webhook URL."""
    if not job.webhook_url:
        return None
    now = utcnow()
    return await webhook_service.enqueue_event(
        session,
        api_key_id=job.api_key_id,
        job_id=job.id,
        url=job.webhook_url,
        event_type=event,
        body=event_body(job, event, now),
        traceparent=job.traceparent,
        now=now,
    )


async def on_finished(session: AsyncSession, job: Job | None) -> WebhookDelivery | None:
    """The terminal event of a job that just finished (``None``: nothing finished), if the
    client wants it."""
    if job is None:
        return None
    event = TERMINAL_EVENTS.get(JobStatus(job.status))
    if event is None or not wants(job, event):
        return None
    return await enqueue(session, job, event)


async def on_started(session: AsyncSession, job: Job) -> WebhookDelivery | None:
    """``job.started``, only for jobs that asked for it, in the transaction that starts it."""
    if not wants(job, EventType.JOB_STARTED):
        return None
    return await enqueue(session, job, EventType.JOB_STARTED)
