"""Webhook deliveries (owner only) and the caller's signing secret."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import CallerDep, CurrentKey, SessionDep, SettingsDep
from app.api.problems import responses
from app.api.routing import CheckedRoute
from app.job import service as job_service
from app.security.secretbox import SecretBox
from app.webhook import service as webhook_service
from app.webhook.schemas import (
    WebhookDeliveryList,
    WebhookDeliveryRead,
    WebhookSecretRead,
    WebhookSecretRotated,
)

router = APIRouter(route_class=CheckedRoute, tags=["webhooks"], responses=responses(401))


@router.get(
    "/v1/jobs/{job_id}/webhook-deliveries",
    response_model=WebhookDeliveryList,
    responses=responses(404),
)
async def job_deliveries(job_id: str, key: CallerDep, session: SessionDep) -> WebhookDeliveryList:
    job = await job_service.get(session, job_id, key.id)  # the caller's job, or 404
    return WebhookDeliveryList(items=await webhook_service.list_for_job(session, job.id))


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDeliveryRead,
    responses=responses(404, 409),
)
async def redeliver(delivery_id: str, key: CallerDep, session: SessionDep) -> WebhookDeliveryRead:
    return await webhook_service.redeliver(session, delivery_id, key.id)


@router.get("/v1/webhook-secret", response_model=WebhookSecretRead)
async def webhook_secret(key: CurrentKey) -> WebhookSecretRead:
    return webhook_service.secret_read(key)


@router.post("/v1/webhook-secret/rotate", response_model=WebhookSecretRotated)
async def rotate_webhook_secret(
    key: CurrentKey, session: SessionDep, settings: SettingsDep
) -> WebhookSecretRotated:
    box = SecretBox.from_settings(settings)
    return await webhook_service.rotate_secret(session, box, key, settings.webhook_secret_overlap_s)
