"""The webhook delivery loop: claim due outbox rows, sign, POST, record, schedule retries.

Run ``await WebhookDispatcher(db, settings).run_forever(stop_event)`` in a worker (any number of
them: claims are compare-and-set). Delivery is at least once; ``webhook-id`` is the receiver's
idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from opentelemetry.trace import SpanKind

import otel
from app.auth.models import ApiKey
from app.db import Database
from app.db.base import utcnow
from app.fetch.client import parse_retry_after
from app.security.secretbox import SecretBox
from app.security.ssrf import SsrfBlocked, SsrfPolicy, egress_transport
from app.settings import Settings
from app.telemetry import background_span
from app.webhook import repository, signing
from app.webhook.metrics import WebhookMetrics, default_metrics
from app.webhook.models import AttemptOutcome, DeliveryStatus, WebhookAttempt, WebhookDelivery

log = logging.getLogger("trawl.webhook")

USER_AGENT = "Trawl-Webhooks/0.1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: AttemptOutcome
    status_code: int | None
    error_type: str | None
    duration_s: float
    retry_after_s: float | None = None


def classify_response(status: int) -> AttemptOutcome:
    if 200 <= status < 300:
        return AttemptOutcome.SUCCESS
    if 300 <= status < 400:
        return AttemptOutcome.REDIRECT  # never followed: a failure
    if status == 410:
        return AttemptOutcome.GONE
    return AttemptOutcome.HTTP_ERROR


def make_webhook_client(policy: SsrfPolicy) -> httpx.AsyncClient:
    """No redirects, no proxy env, no cookies kept across receivers; SSRF-pinned connections;
    traced without context propagation (no ``traceparent``/``baggage`` to receivers)."""
    return httpx.AsyncClient(
        transport=otel.traced_transport(egress_transport(policy)),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        policy: SsrfPolicy | None = None,
        box: SecretBox | None = None,
        metrics: WebhookMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.policy = policy or SsrfPolicy.from_settings(settings)
        self._own_client = client is None
        self.client = client or make_webhook_client(self.policy)
        self.box = box or SecretBox.from_settings(settings)
        self.metrics = metrics or default_metrics()
        self.rng = rng or random.Random()  # noqa: S311 (retry jitter)

    # -- the loop ----------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sent = 0
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("webhook dispatch failed")
            if sent >= self.settings.webhook_batch_size:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.webhook_poll_interval_s)

    async def run_once(self) -> int:
        """Claim the due deliveries, send them concurrently, record each. Returns how many."""
        s = self.settings
        now = utcnow()
        token = uuid.uuid4().hex
        async with self.db.transaction() as session:
            claimed = await repository.claim_due(
                session,
                now=now,
                sending_before=now - timedelta(seconds=s.webhook_sending_timeout_s),
                limit=s.webhook_batch_size,
                token=token,
            )
            secrets = await self._secrets(session, {d.api_key_id for d in claimed})
        if not claimed:
            return 0
        gate = asyncio.Semaphore(s.webhook_concurrency)

        async def one(delivery: WebhookDelivery) -> None:
            async with gate:
                # each delivery is its own trace, linked to the job's: the POST is its child
                with background_span(
                    "trawl.webhook deliver",
                    SpanKind.INTERNAL,
                    link_traceparent=delivery.traceparent,
                    attributes={
                        "trawl.job.id": delivery.job_id,
                        "trawl.webhook.id": delivery.id,
                        "trawl.webhook.event": delivery.event_type,
                        "trawl.webhook.attempt": delivery.attempts + 1,
                    },
                ) as span:
                    result = await self.send(delivery, secrets.get(delivery.api_key_id, []))
                    span.set_attribute("trawl.webhook.outcome", result.outcome.value)
                    await self._record(delivery, token, result)

        await asyncio.gather(*(one(d) for d in claimed))
        return len(claimed)

    async def _secrets(self, session: Any, key_ids: set[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key_id in key_ids:
            key = await session.get(ApiKey, key_id)
            if key is None:
                continue
            signing.ensure_secret(self.box, key)
            out[key_id] = signing.signing_secrets(self.box, key)
        return out

    # -- one attempt -------------------------------------------------------------------------

    def headers(
        self, delivery: WebhookDelivery, secrets: list[str], timestamp: int
    ) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(
                secrets, delivery.id, timestamp, delivery.body
            ),
        }

    async def send(self, delivery: WebhookDelivery, secrets: list[str]) -> AttemptResult:
        started = time.perf_counter()
        timestamp = int(time.time())

        def done(
            outcome: AttemptOutcome,
            code: int | None = None,
            error: str | None = None,
            retry_after: float | None = None,
        ) -> AttemptResult:
            return AttemptResult(outcome, code, error, time.perf_counter() - started, retry_after)

        try:
            async with asyncio.timeout(self.settings.webhook_timeout_s):
                url = httpx.URL(delivery.url)
                await self.policy(url)
                request = self.client.build_request(
                    "POST",
                    url,
                    content=delivery.body.encode(),
                    headers=self.headers(delivery, secrets, timestamp),
                )
                response = await self.client.send(request, stream=True)
                await response.aclose()  # the receiver's body is not ours to read
        except SsrfBlocked:
            return done(AttemptOutcome.SSRF_BLOCKED, error="SsrfBlocked")
        except (httpx.TimeoutException, TimeoutError) as exc:
            return done(AttemptOutcome.TIMEOUT, error=type(exc).__name__)
        except (httpx.HTTPError, OSError) as exc:
            return done(AttemptOutcome.CONNECTION_ERROR, error=type(exc).__name__)
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return done(
            classify_response(response.status_code), response.status_code, retry_after=retry_after
        )

    def retry_delay(self, attempt_in_cycle: int, retry_after_s: float | None) -> float | None:
        """Seconds before the next attempt after failed attempt ``attempt_in_cycle`` (1-based),
        or ``None`` when the schedule is exhausted (dead)."""
        schedule = self.settings.webhook_retry_schedule_s
        if attempt_in_cycle > len(schedule):
            return None
        base = schedule[attempt_in_cycle - 1]
        jitter = self.settings.webhook_retry_jitter
        delay = base * self.rng.uniform(1 - jitter, 1 + jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, max(schedule)))
        return delay

    def _next_state(
        self, delivery: WebhookDelivery, result: AttemptResult, now: datetime
    ) -> tuple[DeliveryStatus, datetime | None]:
        if result.outcome == AttemptOutcome.SUCCESS:
            return DeliveryStatus.SUCCEEDED, None
        if result.outcome == AttemptOutcome.GONE:
            return DeliveryStatus.DISABLED, None
        if result.outcome == AttemptOutcome.SSRF_BLOCKED:
            return DeliveryStatus.DEAD, None
        in_cycle = delivery.attempts + 1 - delivery.cycle_offset
        delay = self.retry_delay(in_cycle, result.retry_after_s)
        if delay is None:
            return DeliveryStatus.DEAD, None
        return DeliveryStatus.PENDING, now + timedelta(seconds=delay)

    async def _record(self, delivery: WebhookDelivery, token: str, result: AttemptResult) -> None:
        now = utcnow()
        status, next_at = self._next_state(delivery, result, now)
        number = delivery.attempts + 1
        values: dict[str, Any] = {
            "status": status,
            "attempts": number,
            "last_status_code": result.status_code,
            "last_error_type": result.error_type,
            "last_attempt_at": now,
            "claim_token": None,
            "claimed_at": None,
        }
        if next_at is not None:
            values["next_attempt_at"] = next_at
        if status == DeliveryStatus.SUCCEEDED:
            values["delivered_at"] = now
        async with self.db.transaction() as session:
            if not await repository.finish_attempt(session, delivery.id, token, values):
                log.warning(
                    "webhook delivery no longer ours", extra={"trawl.webhook.id": delivery.id}
                )
                return
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    number=number,
                    outcome=result.outcome.value,
                    status_code=result.status_code,
                    error_type=result.error_type,
                    duration_ms=int(result.duration_s * 1000),
                    started_at=now - timedelta(seconds=result.duration_s),
                    next_attempt_at=next_at,
                )
            )
            if status == DeliveryStatus.DISABLED:
                await repository.disable_endpoint(
                    session, delivery.api_key_id, delivery.url, delivery.id
                )
        self.metrics.attempt(result.outcome.value, result.duration_s)
        if status != DeliveryStatus.PENDING:
            self.metrics.final(status.value)
        log.info(
            "webhook attempt",
            extra={
                "trawl.webhook.id": delivery.id,
                "trawl.job.id": delivery.job_id,
                "trawl.webhook.outcome": result.outcome.value,
                "trawl.webhook.status": status.value,
                "trawl.webhook.attempt": number,
            },
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()
