"""SQL for the webhook outbox. Claims are compare-and-set updates, as for tasks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.webhook.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpointDisabled,
)

BACKLOG_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.DEAD)


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _claimable(now: datetime, sending_before: datetime) -> Any:
    return or_(
        and_(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        ),
        and_(
            WebhookDelivery.status == DeliveryStatus.SENDING,
            WebhookDelivery.claimed_at < sending_before,
        ),
    )


async def claim_due(
    session: AsyncSession, *, now: datetime, sending_before: datetime, limit: int, token: str
) -> list[WebhookDelivery]:
    """Claim due deliveries (and ``sending`` ones whose dispatcher died) for ``token``.

    The UPDATE re-checks the due condition per row, so two dispatchers never claim the same one.
    """
    ids = list(
        (
            await session.execute(
                select(WebhookDelivery.id)
                .where(_claimable(now, sending_before))
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
        ).scalars()
    )
    if not ids:
        return []
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids), _claimable(now, sending_before))
        .values(status=DeliveryStatus.SENDING, claimed_at=now, claim_token=token)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        select(WebhookDelivery)
        .where(WebhookDelivery.claim_token == token, WebhookDelivery.status == "sending")
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def finish_attempt(
    session: AsyncSession, delivery_id: str, token: str, values: dict[str, Any]
) -> bool:
    """Write an attempt's result if this claim still holds the delivery."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.SENDING,
            WebhookDelivery.claim_token == token,
        )
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def is_disabled(session: AsyncSession, api_key_id: str, url: str) -> bool:
    row = await session.get(WebhookEndpointDisabled, (api_key_id, url_hash(url)))
    return row is not None


async def disable_endpoint(
    session: AsyncSession, api_key_id: str, url: str, delivery_id: str
) -> None:
    if await is_disabled(session, api_key_id, url):
        return
    session.add(
        WebhookEndpointDisabled(
            api_key_id=api_key_id,
            url_hash=url_hash(url),
            url=url,
            delivery_id=delivery_id,
            disabled_at=utcnow(),
        )
    )


async def enable_endpoint(session: AsyncSession, api_key_id: str, url: str) -> None:
    await session.execute(
        delete(WebhookEndpointDisabled).where(
            WebhookEndpointDisabled.api_key_id == api_key_id,
            WebhookEndpointDisabled.url_hash == url_hash(url),
        )
    )


async def get_owned(
    session: AsyncSession, delivery_id: str, api_key_id: str
) -> WebhookDelivery | None:
    delivery = await session.get(WebhookDelivery, delivery_id)
    return delivery if delivery is not None and delivery.api_key_id == api_key_id else None


async def for_job(
    session: AsyncSession, job_id: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    deliveries = list(
        (
            await session.execute(
                select(WebhookDelivery)
                .where(WebhookDelivery.job_id == job_id)
                .order_by(WebhookDelivery.id)
            )
        ).scalars()
    )
    attempts = await attempts_of(session, [d.id for d in deliveries])
    return [(d, attempts.get(d.id, [])) for d in deliveries]


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[str]
) -> dict[str, list[WebhookAttempt]]:
    if not delivery_ids:
        return {}
    rows = (
        await session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
    ).scalars()
    out: dict[str, list[WebhookAttempt]] = {}
    for row in rows:
        out.setdefault(row.delivery_id, []).append(row)
    return out


async def backlog(session: AsyncSession) -> dict[str, int]:
    """Deliveries waiting (``pending``), in flight (``sending``) and dead-lettered (``dead``)."""
    rows = await session.execute(
        select(WebhookDelivery.status, func.count())
        .where(WebhookDelivery.status.in_([s.value for s in BACKLOG_STATUSES]))
        .group_by(WebhookDelivery.status)
    )
    counts = {s.value: 0 for s in BACKLOG_STATUSES}
    for status, count in rows.all():
        counts[str(status)] = int(count)
    return counts
